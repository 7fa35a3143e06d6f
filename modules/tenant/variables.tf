variable "name" {
  description = "Tenant name; prefixes every physical database and role name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name))
    error_message = "The tenant name must match ^[a-z][a-z0-9-]{0,19}$."
  }
}

variable "max_databases" {
  description = "Quota of live databases."
  type        = number
  default     = 50
  validation {
    condition     = var.max_databases >= 0 && var.max_databases <= 100000
    error_message = "max_databases must be between 0 and 100000."
  }
}

variable "token_description" {
  description = "Label of the tenant's token (e.g. the CI that will use it)."
  type        = string
  default     = "managed by the tenant module"
}

variable "token_ttl" {
  description = "Lifetime of the token such as 90d; null for no expiry."
  type        = string
  default     = null
  validation {
    condition     = var.token_ttl == null || can(regex("^[0-9]+[smhd]$", coalesce(var.token_ttl, "1d")))
    error_message = "token_ttl must look like 90d, 12h, 30m or 3600s."
  }
}
