variable "name" {
  description = "Instance name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "The instance name must match ^[a-z][a-z0-9-]{0,39}$."
  }
}

variable "host" {
  description = "Host the service connects to."
  type        = string
}

variable "port" {
  description = "PostgreSQL port."
  type        = number
  default     = 5432
  validation {
    condition     = var.port >= 1 && var.port <= 65535
    error_message = "The port must be between 1 and 65535."
  }
}

variable "public_host" {
  description = "Host handed to clients in connection URIs; null uses host."
  type        = string
  default     = null
}

variable "admin_user" {
  description = "Login with SUPERUSER, or CREATEDB and CREATEROLE."
  type        = string
}

variable "admin_password" {
  description = "Password of admin_user (stored encrypted by the service)."
  type        = string
  sensitive   = true
}

variable "sslmode" {
  description = "TLS mode the service uses: disable, prefer, require, verify-ca or verify-full."
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
