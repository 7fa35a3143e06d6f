# Registering an existing server, and a managed one (run with a platform-admin token).
terraform {
  required_providers {
    dbaas = {
      source  = "dbaas/dbaas"
      version = "~> 0.1.0"
    }
  }
}

provider "dbaas" {}

variable "admin_password" {
  type      = string
  sensitive = true
}

module "eu1" {
  source = "../.."

  name               = "pg-eu-1"
  host               = "10.0.3.7"
  admin_user         = "dbaas"
  admin_password     = var.admin_password
  sslmode            = "require"
  environment        = "prod"
  labels             = { tier = "gold" }
  allowed_extensions = ["pgcrypto", "citext"]
}

# A cluster the service provisions on the registered host "db-host-3", for one team.
module "payments" {
  source = "../.."

  name             = "pg-payments"
  kind             = "managed"
  host             = "db-host-3"
  pg_version       = "15"
  environment      = "prod"
  dedicated_tenant = "payments"
  settings         = { shared_buffers = "256MB", work_mem = "16MB" }
}
