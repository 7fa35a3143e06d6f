resource "dbaas_tenant" "this" {
  name          = var.name
  max_databases = var.max_databases
}

resource "dbaas_token" "this" {
  tenant      = dbaas_tenant.this.name
  description = var.token_description
  ttl         = var.token_ttl
}
