//! Backup stores and per-database backups.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

/// `filesystem`: a directory on the API host (or a mount on it). `s3`: a bucket of S3 or of
/// a server speaking its protocol, addressed path-style.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BackupStoreKind {
    Filesystem,
    S3,
}

impl BackupStoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filesystem => "filesystem",
            Self::S3 => "s3",
        }
    }
}

/// S3 Object Lock retention mode: `governance` (users with a special permission may still
/// delete) or `compliance` (nobody can, not even the account's root, before the date).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ObjectLockMode {
    Governance,
    Compliance,
}

impl ObjectLockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Governance => "governance",
            Self::Compliance => "compliance",
        }
    }
}

/// Every backup written to the store gets a retention date `days` after it is written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: ObjectLockMode,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 36500))]
    pub days: u32,
}

/// Where a bucket is (the secret is never returned).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct S3Location {
    /// `https://s3.eu-west-1.amazonaws.com`, or an S3-compatible server's URL.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Prepended to every object key, e.g. `dbaas/` (may be empty).
    #[serde(default)]
    pub prefix: String,
    pub access_key_id: String,
}

/// An S3 bucket to register: its location and the secret access key (stored encrypted).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateS3Location {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    #[serde(default)]
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A place backups are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateBackupStore {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z](-?[a-z0-9])*$", min_length = 1, max_length = 40))]
    pub name: String,
    pub kind: BackupStoreKind,
    /// `filesystem`: an absolute path to an existing directory the API can write.
    #[serde(default)]
    pub path: Option<String>,
    /// `s3`: the bucket.
    #[serde(default)]
    pub s3: Option<CreateS3Location>,
    /// `s3` only: write every backup with this Object Lock retention (the bucket must have
    /// Object Lock enabled).
    #[serde(default)]
    pub object_lock: Option<ObjectLock>,
    /// The environments whose databases keep their backups here.
    pub environments: Vec<Environment>,
}

impl CreateBackupStore {
    /// A directory store.
    pub fn filesystem(name: &str, path: &str, environments: Vec<Environment>) -> Self {
        Self {
            name: name.into(),
            kind: BackupStoreKind::Filesystem,
            path: Some(path.into()),
            s3: None,
            object_lock: None,
            environments,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BackupStore {
    pub id: Uuid,
    pub name: String,
    pub kind: BackupStoreKind,
    pub path: Option<String>,
    pub s3: Option<S3Location>,
    pub object_lock: Option<ObjectLock>,
    /// `s3`: whether the bucket had Object Lock enabled when it was registered.
    pub bucket_object_lock: Option<bool>,
    pub environments: Vec<Environment>,
    pub created_at: DateTime<Utc>,
}

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BackupReason {
    /// Asked for by `POST /v1/databases/{id}/backups`.
    Manual,
    /// A `backup` schedule fired.
    Scheduled,
    /// Taken before the database was deleted.
    Final,
    /// The database as it was at `recovery_target`, dumped from a scratch cluster recovered
    /// to that time (made by a point-in-time restore).
    #[serde(rename = "point_in_time")]
    PointInTime,
}

impl BackupReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Scheduled => "scheduled",
            Self::Final => "final",
            Self::PointInTime => "point_in_time",
        }
    }
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

/// A table's row count, taken in the dump's own snapshot, and for tables below the size
/// limit (64 MiB) a checksum of its content: restores and drills compare both.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
    /// md5 of the table's rows as text, in text order (null above the size limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
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
    pub reason: BackupReason,
    /// `point_in_time`: the time the database was recovered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_target: Option<DateTime<Utc>>,
    /// When the retention policy purges it (kept as long as it is the database's last good
    /// backup while the database exists).
    pub expires_at: Option<DateTime<Utc>>,
    /// Object Lock: the store refuses to delete it before this date.
    pub locked_until: Option<DateTime<Utc>>,
    /// Under Object Lock retention now.
    pub locked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BackupAccepted {
    pub backup: Backup,
    pub operation: Operation,
}

/// What an environment's databases get unless they say otherwise (platform admin).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackupPolicy {
    pub environment: Environment,
    /// Cron of the `backup` schedule every new database gets (UTC); null: none.
    pub backup_cron: Option<String>,
    /// Cron of the `verify` schedule (restore drill of the latest backup); null: none.
    pub verify_cron: Option<String>,
    /// Days a backup is kept unless its database says otherwise.
    pub retention_days: u32,
    /// The bounds a database's own `backup_retention_days` must stay within.
    pub min_retention_days: u32,
    pub max_retention_days: u32,
    /// `DELETE /v1/databases/{id}` takes a final backup first unless the request says no.
    pub final_backup_on_delete: bool,
}

/// `POST /v1/databases/{id}/restore`: `new` creates a database `name` of the same tenant
/// from the backup; `in_place` restores into a side database, checks it, then swaps it in,
/// keeping the previous database for `retain_hours`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RestoreTarget {
    New,
    InPlace,
}

/// Undoes an in-place restore while the previous database is kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UndoRestore {
    /// How long open sessions may stay before they are terminated, e.g. `30s` (at most 1h).
    #[serde(default)]
    pub grace: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The backup to restore; or give `time` instead.
    #[serde(default)]
    pub backup: Option<Uuid>,
    /// Restore the database as it was at this time (RFC 3339), from the instance's archive:
    /// managed instances with archiving only, inside `GET /v1/databases/{id}/recovery`'s window.
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    pub target: RestoreTarget,
    /// `new`: the new database's name.
    #[serde(default)]
    pub name: Option<String>,
    /// `in_place`: hours the previous database is kept (default 24, at most 720).
    #[serde(default)]
    pub retain_hours: Option<u32>,
    /// `in_place`: how long open sessions may stay before they are terminated, e.g. `30s`.
    #[serde(default)]
    pub grace: Option<String>,
}
