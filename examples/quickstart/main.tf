terraform {
  required_providers {
    dbaas = {
      source  = "dbaas/dbaas"
      version = "0.1.0"
    }
  }
}

# DBAAS_ENDPOINT and DBAAS_TOKEN come from `source /var/tmp/dbaas-dev/env`.
provider "dbaas" {}

resource "dbaas_tenant" "demo" {
  name = "demo"
}

resource "dbaas_database" "app" {
  tenant     = dbaas_tenant.demo.name
  name       = "app"
  instance   = "local"
  extensions = ["pgcrypto"]
}

output "admin_uri" {
  value     = dbaas_database.app.admin_uri
  sensitive = true
}

output "read_uri" {
  value     = dbaas_database.app.read_uri
  sensitive = true
}
