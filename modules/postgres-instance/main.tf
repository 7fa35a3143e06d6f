locals {
  managed = var.kind == "managed"
}

resource "dbaas_instance" "this" {
  name               = var.name
  kind               = var.kind
  host               = var.host
  port               = var.port
  public_host        = var.public_host
  admin_user         = local.managed ? null : var.admin_user
  admin_password     = local.managed ? null : var.admin_password
  sslmode            = local.managed ? null : var.sslmode
  ca_cert            = local.managed ? null : var.ca_cert
  version            = local.managed ? var.pg_version : null
  settings           = local.managed ? var.settings : null
  dedicated_tenant   = var.dedicated_tenant
  protected          = coalesce(var.protected, var.environment == "prod")
  auto_restart       = local.managed ? var.auto_restart : null
  environment        = var.environment
  labels             = var.labels
  max_databases      = var.max_databases
  allowed_extensions = var.allowed_extensions

  lifecycle {
    precondition {
      condition     = local.managed || !contains(["verify-ca", "verify-full"], var.sslmode) || var.ca_cert != null
      error_message = "verify-ca and verify-full need ca_cert."
    }
    precondition {
      condition     = local.managed || (var.admin_user != null && var.admin_password != null)
      error_message = "An external instance needs admin_user and admin_password."
    }
    precondition {
      condition     = !local.managed || var.pg_version != null
      error_message = "A managed instance needs pg_version (the PostgreSQL major version on the host, e.g. \"15\")."
    }
  }
}
