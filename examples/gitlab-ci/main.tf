# The application's database, declared in the application's own repository.
terraform {
  required_providers {
    dbaas = {
      source  = "dbaas/dbaas"
      version = "~> 0.1.0"
    }
  }
  # GitLab-managed state; the pipeline fills in address, lock and credentials (TF_HTTP_*).
  backend "http" {}
}

provider "dbaas" {} # DBAAS_ENDPOINT / DBAAS_TOKEN from masked CI variables

module "db" {
  source      = "git::https://gitlab.example.com/platform/dbaas.git//modules/postgres-database?ref=v0.1.0"
  name        = "orders"
  environment = "prod"
  extensions  = ["pgcrypto"]
}

output "database_id" {
  value = module.db.id
}

output "write_uri" {
  value     = module.db.uris.write
  sensitive = true
}
