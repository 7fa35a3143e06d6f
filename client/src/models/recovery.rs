//! Point-in-time recovery: an instance's recovery window (pgBackRest base backups and the WAL
//! archive) and its archiving health.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

/// Whether a managed instance archives its WAL.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ArchivingState {
    /// No repository yet (an `enable_archiving` operation is due).
    Off,
    /// Archiving to the instance's pgBackRest repository.
    On,
    /// The host has no pgBackRest.
    Unavailable,
}

/// The kind of a pgBackRest base backup.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BaseBackupKind {
    Full,
    Diff,
    Incr,
}

impl BaseBackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Diff => "diff",
            Self::Incr => "incr",
        }
    }
}

/// One base backup in the instance's repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BaseBackup {
    /// pgBackRest's label, e.g. `20261203-150922F`.
    pub label: String,
    pub kind: BaseBackupKind,
    pub started_at: DateTime<Utc>,
    pub stopped_at: DateTime<Utc>,
    /// The cluster's size when it was taken.
    pub size_bytes: i64,
    /// What it added to the repository (compressed, encrypted).
    pub repository_bytes: i64,
}

/// WAL archiving as the server reports it (`pg_stat_archiver`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ArchiveHealth {
    pub archived_count: i64,
    pub last_archived_wal: Option<String>,
    pub last_archived_at: Option<DateTime<Utc>>,
    /// Seconds since the last WAL file was archived.
    pub last_archived_age_seconds: Option<i64>,
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
    pub last_failed_at: Option<DateTime<Utc>>,
    /// The newest WAL file in the repository.
    pub repository_max_wal: Option<String>,
}

/// `GET /v1/instances/{name}/recovery`: the times a restore can reach.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecoveryWindow {
    pub instance: String,
    pub archiving: ArchivingState,
    /// The first base backup's end: nothing before it can be restored.
    pub earliest: Option<DateTime<Utc>>,
    /// The newest time whose every commit is in the archive.
    pub latest: Option<DateTime<Utc>>,
    /// Oldest first.
    pub base_backups: Vec<BaseBackup>,
    pub archive: Option<ArchiveHealth>,
    /// The newest point-in-time drill.
    pub last_drill: Option<PitrDrill>,
}

/// A point-in-time drill: the archive's end restored into a scratch cluster, started, and its
/// databases checked against the state database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PitrDrill {
    pub operation_id: Uuid,
    pub passed: bool,
    /// Repository restore plus recovery until the scratch cluster served.
    pub restore_ms: Option<i64>,
    /// The last transaction recovered: the recovery point a restore would have achieved.
    pub recovery_point: Option<DateTime<Utc>>,
    pub message: Option<String>,
    pub finished_at: DateTime<Utc>,
}

/// `GET /v1/databases/{id}/recovery`: the part of the instance's window a tenant may see.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DatabaseRecoveryWindow {
    pub database_id: Uuid,
    pub archiving: ArchivingState,
    /// The later of the instance's earliest restorable time and the database's creation.
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    /// Seconds since the instance last archived WAL (how far behind `latest` may lag).
    pub last_archived_age_seconds: Option<i64>,
}

/// `POST /v1/instances/{name}/base-backups`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateBaseBackup {
    /// `full`, or `diff` (what changed since the last full one).
    pub kind: BaseBackupKind,
}

/// `POST /v1/instances/{name}/restore`: the whole instance to a time, an LSN, or the
/// archive's end. `in_place` takes a safety base backup first, stops the server, restores with
/// `--delta`, recovers, promotes and checks, then brings the instance's databases and
/// credentials back in line with the service's records; `new` builds another managed
/// instance `name` on the same host from the repository.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RestoreInstance {
    /// Restore to this time (RFC 3339), inside the recovery window.
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    /// Restore to this WAL position, e.g. `0/3000060`.
    #[serde(default)]
    pub lsn: Option<String>,
    /// Restore to the end of the archive.
    #[serde(default)]
    pub latest: bool,
    pub target: Option<RestoreTarget>,
    /// `new`: the new instance's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// How far an instance restore recovers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecoveryTarget {
    Time(DateTime<Utc>),
    Lsn(String),
    Latest,
}
