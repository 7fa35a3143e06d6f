//! Databases, their credentials and leases.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

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

/// How the routing proxy in front of a managed instance pools a database's server
/// connections.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// A client keeps one server connection for its whole session (everything works).
    #[default]
    Session,
    /// A server connection per transaction: many more clients than server connections, but
    /// no session state between transactions (SET, advisory locks, LISTEN, and with
    /// pgbouncer 1.18 no protocol-level prepared statements).
    Transaction,
}

impl PoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Transaction => "transaction",
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
    /// Lower-case letters, digits and single '-' inside, starting with a letter; with the
    /// tenant's name it must leave room for role names within PostgreSQL's 63 bytes.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z](-?[a-z0-9])*$", min_length = 1, max_length = 63))]
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
    /// Fill the new database from this backup (one of the same tenant's, succeeded): it is
    /// restored as the new database's admin role, in one transaction, and its row counts are
    /// checked against the backup's manifest. Backups outlive their database.
    #[serde(default)]
    pub restore_from: Option<Uuid>,
    /// Days its backups are kept (default: the environment's policy; within the policy's
    /// bounds).
    #[serde(default)]
    pub backup_retention_days: Option<u32>,
    /// The store its backups go to (default: the only store serving its environment).
    #[serde(default)]
    pub backup_store: Option<String>,
    /// How the routing proxy pools its connections (default `session`; only databases on
    /// managed instances whose host runs a proxy are reached through one).
    #[serde(default)]
    pub pool_mode: Option<PoolMode>,
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
    /// Days its backups are kept (within its environment's policy bounds).
    #[serde(default)]
    pub backup_retention_days: Option<u32>,
    #[serde(default)]
    pub backup_store: Option<String>,
    #[serde(default)]
    pub pool_mode: Option<PoolMode>,
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
    /// `<tenant>_<name>` on the instance (names cannot contain `_`, so no two pairs collide).
    pub physical_name: String,
    pub instance: String,
    pub environment: Environment,
    pub host: String,
    pub port: u16,
    pub mode: DatabaseMode,
    pub status: DatabaseStatus,
    pub extensions: Vec<String>,
    pub connection_limit: i32,
    /// How the routing proxy pools its connections.
    pub pool_mode: PoolMode,
    pub roles: RoleNames,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The last operation on this database.
    pub last_operation_id: Option<Uuid>,
    /// Differences between this record and the instance's catalog (on single GETs, and on
    /// lists asked with `include=drift`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    #[serde(default)]
    pub backups: DatabaseBackups,
    /// The database's credentials as `GET /v1/databases/{id}/credentials` lists them (only on
    /// lists asked with `include=credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<Credential>>,
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
    /// When the catalog was compared: by the background reconciler (every
    /// `DBAAS_DRIFT_INTERVAL_MS`), or now when asked with `?fresh=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
    /// Set by the client, never sent: a live comparison was asked for and refused (rate
    /// limited), so this is the stored one (`checked_at` says how old).
    #[serde(skip)]
    pub stored_instead_of_fresh: bool,
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
    /// The instance's CA certificate (PEM), when it has one: save it and connect with
    /// `sslmode=verify-full&sslrootcert=<that file>` so the server's identity is checked too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
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

/// A rotation under way. It carries no password: the one stored now stops working when the
/// operation succeeds, and the new one is read from `GET
/// /v1/databases/{database_id}/credentials/{access}` after that.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RotationAccepted {
    pub database_id: Uuid,
    pub credential_id: Uuid,
    pub access: Access,
    pub operation: Operation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CredentialAccepted {
    pub credential: Credential,
    pub operation: Option<Operation>,
}

/// A database's backups at a glance: its own settings, the latest backup and drill.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DatabaseBackups {
    /// Its own retention (null: its environment's policy).
    pub retention_days: Option<u32>,
    /// Its own store (null: the only store serving its environment).
    pub store: Option<String>,
    pub last_backup_at: Option<DateTime<Utc>>,
    pub last_backup_status: Option<BackupStatus>,
    pub last_verify_status: Option<VerifyStatus>,
    pub last_verified_at: Option<DateTime<Utc>>,
    /// The latest restore drill failed: the latest backups may not restore.
    pub verification_failed: bool,
    /// After an in-place restore: the previous database is kept until then.
    pub previous_retained_until: Option<DateTime<Utc>>,
}
