# Onboarding a team: its tenant and a token for its CI (run with a platform-admin token).
terraform {
  required_providers {
    dbaas = {
      source  = "dbaas/dbaas"
      version = "~> 0.1.0"
    }
  }
}

provider "dbaas" {}

module "payments" {
  source = "../.."

  name              = "payments"
  max_databases     = 20
  token_description = "GitLab CI of group payments"
  token_ttl         = "90d"
}

output "payments_token" {
  value     = module.payments.token
  sensitive = true
}
