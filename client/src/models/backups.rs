//! Backup stores and per-database backups.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

/// A place backups are kept. `filesystem`: a directory on the API host (or a mount on it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateBackupStore {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z](-?[a-z0-9])*$", min_length = 1, max_length = 40))]
    pub name: String,
    /// An absolute path to an existing directory the API can write.
    pub path: String,
    /// The environments whose databases keep their backups here.
    pub environments: Vec<Environment>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BackupStore {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub path: String,
    pub environments: Vec<Environment>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateBackup {
    /// The store to keep it in (default: the only store serving the database's environment).
    #[serde(default)]
    pub store: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum VerifyStatus {
    Passed,
    Failed,
}

/// A table's row count, taken in the dump's own snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
}

/// What a backup holds, recorded when it was taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BackupManifest {
    pub database: String,
    pub server_version: String,
    pub pg_dump_version: String,
    /// `custom`: one compressed archive that pg_restore reads in any order, streamed as it is
    /// written (a directory-format dump would need the whole dump on local disk first).
    pub format: String,
    pub tables: Vec<TableRows>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Backup {
    pub id: Uuid,
    pub database_id: Uuid,
    pub store: String,
    pub status: BackupStatus,
    /// Bytes kept in the store (sealed).
    pub size_bytes: Option<i64>,
    /// Bytes of the dump itself.
    pub dump_bytes: Option<i64>,
    /// SHA-256 of the stored object, hex.
    pub sha256: Option<String>,
    pub manifest: Option<BackupManifest>,
    pub error: Option<String>,
    pub verify_status: Option<VerifyStatus>,
    pub verify_message: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    /// How long the verifying restore took (the measured restore time), ms.
    pub restore_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BackupAccepted {
    pub backup: Backup,
    pub operation: Operation,
}
