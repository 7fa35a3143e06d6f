output "name" {
  description = "Instance name (use it as a database's instance)."
  value       = dbaas_instance.this.name
}

output "server_version" {
  description = "PostgreSQL version found at registration."
  value       = dbaas_instance.this.server_version
}

output "environment" {
  description = "Environment of the instance."
  value       = dbaas_instance.this.environment
}
