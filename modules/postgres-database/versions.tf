terraform {
  required_version = ">= 1.10"
  required_providers {
    dbaas = {
      source  = "dbaas/dbaas"
      version = "~> 0.1.0"
    }
  }
}
