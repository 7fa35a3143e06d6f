output "id" {
  description = "Database id in the dbaas API (for leases and imports)."
  value       = dbaas_database.this.id
}

output "database_name" {
  description = "Physical database name on the instance (<tenant>_<name>)."
  value       = dbaas_database.this.physical_name
}

output "instance" {
  description = "Instance the database is on."
  value       = dbaas_database.this.instance
}

output "host" {
  description = "Host clients connect to."
  value       = dbaas_database.this.host
}

output "port" {
  description = "Port clients connect to."
  value       = dbaas_database.this.port
}

output "roles" {
  description = "Role names per access level."
  value = {
    read  = dbaas_database.this.read_role
    write = dbaas_database.this.write_role
    admin = dbaas_database.this.admin_role
  }
}

output "uris" {
  description = "Connection URIs (sslmode=require) per access level."
  sensitive   = true
  value = {
    read  = dbaas_database.this.read_uri
    write = dbaas_database.this.write_uri
    admin = dbaas_database.this.admin_uri
  }
}

output "maintenance_schedule_ids" {
  description = "Ids of the maintenance schedules, by name."
  value       = { for k, s in dbaas_maintenance_schedule.this : k => s.id }
}
