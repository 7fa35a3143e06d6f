//! Request and response bodies of the `/v1` API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// RFC 9457 problem details, as every error response carries them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Problem {
    /// A URI naming the problem kind.
    #[serde(rename = "type", default)]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`.
    pub code: String,
    #[serde(default)]
    pub detail: String,
    /// Per-field errors for validation problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FieldError {
    /// JSON pointer-ish path of the offending field, e.g. `name` or `placement.environment`.
    pub field: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Preprod,
    Prod,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Preprod => "preprod",
            Self::Prod => "prod",
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sandbox" => Ok(Self::Sandbox),
            "preprod" => Ok(Self::Preprod),
            "prod" => Ok(Self::Prod),
            other => Err(format!("unknown environment {other:?} (sandbox, preprod, prod)")),
        }
    }
}

// ---------------------------------------------------------------- tenants

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// `^[a-z][a-z0-9-]{0,19}$`
    pub name: String,
    /// Quota: how many live databases the tenant may have (default 50).
    #[serde(default)]
    pub max_databases: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub max_databases: Option<i32>,
    /// Optimistic concurrency: the version last read (or send `If-Match`).
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub max_databases: i32,
    pub database_count: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- tokens

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Tenant the token is scoped to; omit (admin callers only) for a platform-admin token.
    pub tenant: Option<String>,
    /// A label for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// Lifetime, e.g. `90d`, `12h`, `3600s`. Omit for no expiry.
    #[serde(default)]
    pub ttl: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Token {
    pub id: Uuid,
    pub tenant: Option<String>,
    pub admin: bool,
    pub description: String,
    /// First characters of the secret, to recognise it.
    pub prefix: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Returned once, at creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: Token,
    pub secret: String,
}

// ---------------------------------------------------------------- instances

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum InstanceKind {
    /// An existing server registered with an admin login.
    External,
    /// A server this service provisions on a host.
    Managed,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: InstanceKind,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Host name handed to clients in connection URIs, when it differs from `host`.
    #[serde(default)]
    pub public_host: Option<String>,
    pub admin_user: String,
    pub admin_password: String,
    /// TLS mode the service uses to reach the instance.
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM CA certificate of the instance, offered to clients for `verify-full`.
    #[serde(default)]
    pub ca_cert: Option<String>,
    pub environment: Environment,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Capacity: how many databases this instance may hold.
    #[serde(default = "default_capacity")]
    pub max_databases: i32,
    /// Extensions tenants may request on this instance.
    #[serde(default)]
    pub allowed_extensions: Vec<String>,
}

fn default_kind() -> InstanceKind {
    InstanceKind::External
}
fn default_port() -> u16 {
    5432
}
fn default_capacity() -> i32 {
    100
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateInstance {
    pub version: Option<i64>,
    pub admin_password: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub max_databases: Option<i32>,
    pub allowed_extensions: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Instance {
    pub id: Uuid,
    pub name: String,
    pub kind: InstanceKind,
    pub host: String,
    pub port: u16,
    pub public_host: String,
    pub admin_user: String,
    pub sslmode: SslMode,
    pub ca_cert: Option<String>,
    pub environment: Environment,
    pub labels: BTreeMap<String, String>,
    pub max_databases: i32,
    pub database_count: i64,
    pub allowed_extensions: Vec<String>,
    pub server_version: String,
    /// Scheduled maintenance starts only inside this window (none: any time).
    #[serde(default)]
    pub maintenance_window: Option<MaintenanceWindow>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- hosts

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    /// The API's own machine.
    Local,
    /// A machine reached over SSH.
    Ssh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateHost {
    pub name: String,
    pub kind: HostKind,
    /// ssh: address of the machine.
    #[serde(default)]
    pub address: Option<String>,
    /// ssh: port (default 22).
    #[serde(default)]
    pub ssh_port: Option<u16>,
    #[serde(default)]
    pub ssh_user: Option<String>,
    /// ssh: private key (PEM/OpenSSH), stored encrypted.
    #[serde(default)]
    pub ssh_private_key: Option<String>,
    /// ssh: the host's public key line, checked on every connection.
    #[serde(default)]
    pub ssh_known_host_key: Option<String>,
    /// Absolute directory under which instance data directories are created.
    pub data_root: String,
    /// Ports instances may use, inclusive (default 5500-5599).
    #[serde(default)]
    pub port_range: Option<[u16; 2]>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PgVersion {
    /// Major version, e.g. `15`.
    pub version: String,
    /// What `pg_config --version` printed.
    pub full_version: String,
    pub bin_dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Host {
    pub id: Uuid,
    pub name: String,
    pub kind: HostKind,
    pub address: Option<String>,
    pub data_root: String,
    pub port_range: [u16; 2],
    /// PostgreSQL versions found on the host at registration.
    pub pg_versions: Vec<PgVersion>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- databases

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DatabaseMode {
    #[default]
    Standard,
    /// Deleting never drops it: it becomes `retained`.
    Protected,
}

impl DatabaseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Protected => "protected",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DatabaseStatus {
    Provisioning,
    Ready,
    Updating,
    Deleting,
    Deleted,
    /// Deleted while protected: data, roles and credentials kept, no longer managed.
    Retained,
    Failed,
}

impl DatabaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Updating => "updating",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
            Self::Retained => "retained",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for DatabaseStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "provisioning" => Self::Provisioning,
            "ready" => Self::Ready,
            "updating" => Self::Updating,
            "deleting" => Self::Deleting,
            "deleted" => Self::Deleted,
            "retained" => Self::Retained,
            "failed" => Self::Failed,
            other => return Err(format!("unknown database status {other:?}")),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Placement {
    pub environment: Option<Environment>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateDatabase {
    pub name: String,
    /// Defaults to the token's tenant; admin tokens must name it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Instance name; exclusive with `placement`.
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub placement: Option<Placement>,
    /// Defaults to `protected` in `prod`, else `standard`.
    #[serde(default)]
    pub mode: Option<DatabaseMode>,
    #[serde(default)]
    pub extensions: Vec<String>,
    /// -1 for no limit (default).
    #[serde(default)]
    pub connection_limit: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateDatabase {
    /// The version last read; or send `If-Match`.
    pub version: Option<i64>,
    pub mode: Option<DatabaseMode>,
    pub extensions: Option<Vec<String>>,
    pub connection_limit: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RoleNames {
    pub read: String,
    pub write: String,
    pub admin: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Database {
    pub id: Uuid,
    pub tenant: String,
    pub name: String,
    /// `<tenant>-<name>` on the instance.
    pub physical_name: String,
    pub instance: String,
    pub environment: Environment,
    pub host: String,
    pub port: u16,
    pub mode: DatabaseMode,
    pub status: DatabaseStatus,
    pub extensions: Vec<String>,
    pub connection_limit: i32,
    pub roles: RoleNames,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The last operation on this database.
    pub last_operation_id: Option<Uuid>,
    /// Differences between this record and the instance's catalog (only on single GETs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Drift {
    /// The catalog could be read; when false, `error` says why and the rest is empty.
    pub checked: bool,
    pub database_missing: bool,
    pub missing_roles: Vec<String>,
    /// Human-readable differences (owner, connection limit, extensions, objects not owned by admin…).
    pub differences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Drift {
    pub fn is_clean(&self) -> bool {
        self.checked && !self.database_missing && self.missing_roles.is_empty() && self.differences.is_empty()
    }
}

/// A mutation's answer: the resource as it is now and the operation applying it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DatabaseAccepted {
    pub database: Database,
    pub operation: Option<Operation>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
    Admin,
}

impl Access {
    pub const ALL: [Access; 3] = [Access::Admin, Access::Write, Access::Read];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown access level {other:?} (read, write, admin)")),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    Static,
    Lease,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// Being created on the instance.
    Pending,
    Active,
    /// Expired or revoked; being removed from the instance.
    Revoking,
    Revoked,
}

impl CredentialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Revoking => "revoking",
            Self::Revoked => "revoked",
        }
    }
}

impl std::str::FromStr for CredentialStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "revoking" => Self::Revoking,
            "revoked" => Self::Revoked,
            other => return Err(format!("unknown credential status {other:?}")),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Credential {
    pub id: Uuid,
    pub database_id: Uuid,
    pub kind: CredentialKind,
    pub access: Access,
    pub status: CredentialStatus,
    pub username: String,
    pub password: String,
    /// `postgresql://user:password@host:port/db?sslmode=require`
    pub uri: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateLease {
    pub access: Access,
    /// Lifetime such as `15m`, `1h`, `3600s` (10 s to 30 days).
    pub ttl: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CredentialAccepted {
    pub credential: Credential,
    pub operation: Option<Operation>,
}

// ---------------------------------------------------------------- operations

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    ProvisionDatabase,
    UpdateDatabase,
    DeleteDatabase,
    RotateCredential,
    CreateLease,
    RevokeLease,
    Maintenance,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProvisionDatabase => "provision_database",
            Self::UpdateDatabase => "update_database",
            Self::DeleteDatabase => "delete_database",
            Self::RotateCredential => "rotate_credential",
            Self::CreateLease => "create_lease",
            Self::RevokeLease => "revoke_lease",
            Self::Maintenance => "maintenance",
        }
    }
}

impl std::str::FromStr for OperationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "provision_database" => Self::ProvisionDatabase,
            "update_database" => Self::UpdateDatabase,
            "delete_database" => Self::DeleteDatabase,
            "rotate_credential" => Self::RotateCredential,
            "create_lease" => Self::CreateLease,
            "revoke_lease" => Self::RevokeLease,
            "maintenance" => Self::Maintenance,
            other => return Err(format!("unknown operation kind {other:?}")),
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OperationStatus {
    /// Waiting for a worker (first run, or a retry after a retryable error).
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl std::str::FromStr for OperationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(format!("unknown operation status {other:?}")),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OperationError {
    /// SQLSTATE when PostgreSQL reported the error, else a service code.
    pub code: String,
    pub message: String,
    /// Whether the service retries (with backoff) on its own.
    pub retryable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Operation {
    pub id: Uuid,
    pub kind: OperationKind,
    pub status: OperationStatus,
    pub target_kind: String,
    pub target_id: Uuid,
    pub tenant: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub cancel_requested: bool,
    /// The last error; on a queued operation it is the one being retried.
    pub error: Option<OperationError>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OperationLog {
    pub at: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

// ---------------------------------------------------------------- maintenance

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceKind {
    /// pg_repack: rebuild bloated tables online.
    Repack,
    /// VACUUM (with ANALYZE).
    Vacuum,
    Analyze,
    /// REINDEX … CONCURRENTLY.
    Reindex,
}

impl MaintenanceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Repack => "repack",
            Self::Vacuum => "vacuum",
            Self::Analyze => "analyze",
            Self::Reindex => "reindex",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaintenanceOptions {
    /// repack: skip tables whose estimated bloat is below this (default 20).
    #[serde(default)]
    pub bloat_threshold_percent: Option<f64>,
    /// Longest wait for a table lock, e.g. `5s` (default 10s); never kills other sessions
    /// unless `kill_backends`.
    #[serde(default)]
    pub lock_timeout: Option<String>,
    /// repack: parallel jobs for index builds (1-8, default 1).
    #[serde(default)]
    pub jobs: Option<u32>,
    /// repack: skip a table while a transaction older than this holds a lock on it (default 5m).
    #[serde(default)]
    pub max_transaction_age: Option<String>,
    /// repack: cancel sessions blocking the final lock instead of giving up (default false).
    #[serde(default)]
    pub kill_backends: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateMaintenance {
    pub kind: MaintenanceKind,
    /// Schema-qualified tables (`public.orders`); empty means every table of the database.
    #[serde(default)]
    pub tables: Vec<String>,
    #[serde(default)]
    pub options: MaintenanceOptions,
}

/// A daily window (UTC) in which scheduled maintenance may start; `end` before `start`
/// wraps past midnight.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// `HH:MM`, UTC.
    pub start: String,
    /// `HH:MM`, UTC.
    pub end: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    pub kind: MaintenanceKind,
    /// Cron expression, 5 fields (or 6 with seconds first), UTC, e.g. `0 3 * * SUN`.
    pub cron: String,
    #[serde(default)]
    pub tables: Vec<String>,
    #[serde(default)]
    pub options: MaintenanceOptions,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateSchedule {
    pub version: Option<i64>,
    pub kind: Option<MaintenanceKind>,
    pub cron: Option<String>,
    pub tables: Option<Vec<String>>,
    pub options: Option<MaintenanceOptions>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Schedule {
    pub id: Uuid,
    pub database_id: Uuid,
    pub kind: MaintenanceKind,
    pub cron: String,
    pub tables: Vec<String>,
    pub options: MaintenanceOptions,
    pub enabled: bool,
    /// The next slot; it starts then, or when the instance's maintenance window opens.
    pub next_run_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_operation_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MaintenanceAccepted {
    pub operation: Operation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct List<T> {
    pub items: Vec<T>,
}
