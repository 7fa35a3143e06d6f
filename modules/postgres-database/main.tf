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

resource "dbaas_maintenance_schedule" "this" {
  for_each = var.maintenance_schedules

  database_id             = dbaas_database.this.id
  kind                    = each.value.kind
  cron                    = each.value.cron
  tables                  = each.value.tables
  bloat_threshold_percent = each.value.bloat_threshold_percent
}
