resource "dbaas_database" "this" {
  name              = var.name
  tenant            = var.tenant
  instance          = var.instance
  placement         = var.instance == null ? { environment = var.environment, labels = var.labels } : null
  mode              = coalesce(var.mode, var.environment == "prod" ? "protected" : "standard")
  extensions        = var.extensions
  connection_limit  = var.connection_limit
  rotation_triggers = length(var.rotation_triggers) > 0 ? var.rotation_triggers : null

  backup_retention_days = var.backup_retention_days
  backup_store          = var.backup_store
  restore_from          = var.restore_from_backup == null ? null : { backup = var.restore_from_backup }
}

resource "dbaas_maintenance_schedule" "this" {
  for_each = var.maintenance_schedules

  database_id             = dbaas_database.this.id
  kind                    = each.value.kind
  cron                    = each.value.cron
  tables                  = each.value.tables
  bloat_threshold_percent = each.value.bloat_threshold_percent
}
