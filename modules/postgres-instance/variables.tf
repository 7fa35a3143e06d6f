variable "name" {
  description = "Instance name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "The instance name must match ^[a-z][a-z0-9-]{0,39}$."
  }
}

variable "kind" {
  description = "external (register an existing server) or managed (the service provisions a cluster on a registered host)."
  type        = string
  default     = "external"
  validation {
    condition     = contains(["external", "managed"], var.kind)
    error_message = "kind must be external or managed."
  }
}

variable "host" {
  description = "external: the server's host name or address. managed: the name of a registered host."
  type        = string
}

variable "port" {
  description = "PostgreSQL port. external: null means 5432. managed: null takes the lowest free port of the host's range."
  type        = number
  default     = null
  validation {
    condition     = var.port == null || (coalesce(var.port, 1) >= 1 && coalesce(var.port, 1) <= 65535)
    error_message = "The port must be between 1 and 65535."
  }
}

variable "pg_version" {
  description = "managed: PostgreSQL major version, one the host has (e.g. \"15\")."
  type        = string
  default     = null
}

variable "settings" {
  description = "managed: postgresql.conf parameters (applied by reload, or restart when needed)."
  type        = map(string)
  default     = {}
}

variable "dedicated_tenant" {
  description = "Only this tenant's databases are placed here (a cluster per tenant); null: shared."
  type        = string
  default     = null
}

variable "protected" {
  description = "Never delete the instance; null means true in prod, false elsewhere."
  type        = bool
  default     = null
}

variable "auto_restart" {
  description = "managed: restart the cluster when the health check finds it down."
  type        = bool
  default     = true
}

variable "public_host" {
  description = "Host handed to clients in connection URIs; null uses host."
  type        = string
  default     = null
}

variable "admin_user" {
  description = "external: a login with SUPERUSER, or CREATEDB and CREATEROLE."
  type        = string
  default     = null
}

variable "admin_password" {
  description = "external: password of admin_user (stored encrypted by the service)."
  type        = string
  default     = null
  sensitive   = true
}

variable "sslmode" {
  description = "external: TLS mode the service uses: disable, prefer, require, verify-ca or verify-full."
  type        = string
  default     = "require"
  validation {
    condition     = contains(["disable", "prefer", "require", "verify-ca", "verify-full"], var.sslmode)
    error_message = "sslmode must be disable, prefer, require, verify-ca or verify-full."
  }
}

variable "ca_cert" {
  description = "PEM CA certificate of the server (required for verify-ca and verify-full)."
  type        = string
  default     = null
}

variable "environment" {
  description = "sandbox, preprod or prod."
  type        = string
  validation {
    condition     = contains(["sandbox", "preprod", "prod"], var.environment)
    error_message = "The environment must be sandbox, preprod or prod."
  }
}

variable "labels" {
  description = "Labels used by placement."
  type        = map(string)
  default     = {}
}

variable "max_databases" {
  description = "Capacity of the instance."
  type        = number
  default     = 100
}

variable "allowed_extensions" {
  description = "Extensions tenants may request."
  type        = list(string)
  default     = []
}
