variable "name" {
  description = "Database name within the tenant (lower-case letters, digits and '-')."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*$", var.name)) && !endswith(var.name, "-") && length(var.name) <= 40
    error_message = "The name must start with a lower-case letter, contain only a-z, 0-9 and '-', not end with '-', and have at most 40 characters."
  }
}

variable "tenant" {
  description = "Tenant owning the database; null uses the token's tenant."
  type        = string
  default     = null
  validation {
    condition     = var.tenant == null || can(regex("^[a-z][a-z0-9-]{0,19}$", var.tenant))
    error_message = "The tenant must match ^[a-z][a-z0-9-]{0,19}$."
  }
}

variable "instance" {
  description = "Instance to place the database on. Leave null to let the service choose by environment and labels."
  type        = string
  default     = null
}

variable "environment" {
  description = "Environment to place the database in when no instance is given: sandbox, preprod or prod."
  type        = string
  default     = "sandbox"
  validation {
    condition     = contains(["sandbox", "preprod", "prod"], var.environment)
    error_message = "The environment must be sandbox, preprod or prod."
  }
}

variable "labels" {
  description = "Labels the chosen instance must carry (placement only)."
  type        = map(string)
  default     = {}
}

variable "mode" {
  description = "standard or protected; null means protected in prod and standard elsewhere."
  type        = string
  default     = null
  validation {
    condition     = var.mode == null || contains(["standard", "protected"], coalesce(var.mode, "standard"))
    error_message = "The mode must be standard or protected."
  }
}

variable "extensions" {
  description = "Extensions to install (must be allowed on the instance)."
  type        = list(string)
  default     = []
}

variable "connection_limit" {
  description = "Maximum concurrent connections; -1 for no limit."
  type        = number
  default     = -1
  validation {
    condition     = var.connection_limit >= -1 && var.connection_limit <= 10000
    error_message = "The connection limit must be -1 (no limit) or between 0 and 10000."
  }
}

variable "rotation_triggers" {
  description = "Per access level (read, write, admin): changing a value rotates that role's password."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.rotation_triggers) : contains(["read", "write", "admin"], k)])
    error_message = "rotation_triggers keys must be read, write or admin."
  }
}

variable "maintenance_schedules" {
  description = "Recurring maintenance, keyed by a name: kind (repack, vacuum, analyze, reindex, backup, verify), cron (UTC), optional tables and bloat_threshold_percent (maintenance kinds only)."
  type = map(object({
    kind                    = string
    cron                    = string
    tables                  = optional(list(string))
    bloat_threshold_percent = optional(number)
  }))
  default = {}
  validation {
    condition     = alltrue([for s in values(var.maintenance_schedules) : contains(["repack", "vacuum", "analyze", "reindex", "backup", "verify"], s.kind)])
    error_message = "Each schedule's kind must be repack, vacuum, analyze, reindex, backup or verify."
  }
}

variable "backup_retention_days" {
  description = "Days the database's backups are kept; null uses the environment's policy (35 in prod, 14 in preprod, 7 in sandbox). Must stay within the bounds the platform sets."
  type        = number
  default     = null
  validation {
    condition     = var.backup_retention_days == null || (coalesce(var.backup_retention_days, 1) >= 1 && coalesce(var.backup_retention_days, 1) <= 36500)
    error_message = "backup_retention_days must be between 1 and 36500."
  }
}

variable "backup_store" {
  description = "Backup store the database's backups go to; null uses the only store serving its environment."
  type        = string
  default     = null
}

variable "restore_from_backup" {
  description = "Id of a succeeded backup (of this tenant) to create the database from; used only when the database is created."
  type        = string
  default     = null
}
