output "name" {
  description = "Tenant name."
  value       = dbaas_tenant.this.name
}

output "token" {
  description = "Bearer token scoped to the tenant; hand it to the team (e.g. as a masked CI variable)."
  value       = dbaas_token.this.secret
  sensitive   = true
}

output "token_id" {
  description = "Token id (to revoke it through the API)."
  value       = dbaas_token.this.id
}
