# A team's database with its credentials, placed by environment.
terraform {
  required_providers {
    dbaas = {
      source  = "dbaas/dbaas"
      version = "~> 0.1.0"
    }
  }
}

provider "dbaas" {} # DBAAS_ENDPOINT / DBAAS_TOKEN

module "orders" {
  source = "../.."

  name        = "orders"
  environment = "sandbox"
  extensions  = ["pgcrypto"]
  rotation_triggers = {
    write = "2026-11"
  }
}

output "orders_write_uri" {
  value     = module.orders.uris.write
  sensitive = true
}
