resource "dbaas_instance" "this" {
  name               = var.name
  host               = var.host
  port               = var.port
  public_host        = var.public_host
  admin_user         = var.admin_user
  admin_password     = var.admin_password
  sslmode            = var.sslmode
  ca_cert            = var.ca_cert
  environment        = var.environment
  labels             = var.labels
  max_databases      = var.max_databases
  allowed_extensions = var.allowed_extensions

  lifecycle {
    precondition {
      condition     = !contains(["verify-ca", "verify-full"], var.sslmode) || var.ca_cert != null
      error_message = "verify-ca and verify-full need ca_cert."
    }
  }
}
