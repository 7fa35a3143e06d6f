resource "dbaas_database" "this" {
  name              = var.name
  tenant            = var.tenant
  instance          = var.instance
  placement         = var.instance == null ? { environment = var.environment, labels = var.labels } : null
  mode              = coalesce(var.mode, var.environment == "prod" ? "protected" : "standard")
  extensions        = var.extensions
  connection_limit  = var.connection_limit
  rotation_triggers = length(var.rotation_triggers) > 0 ? var.rotation_triggers : null
}
