# Registering an existing server (run with a platform-admin token).
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
