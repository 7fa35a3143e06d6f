//! Maintenance runs, schedules and windows.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

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

impl std::str::FromStr for MaintenanceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "repack" => Ok(Self::Repack),
            "vacuum" => Ok(Self::Vacuum),
            "analyze" => Ok(Self::Analyze),
            "reindex" => Ok(Self::Reindex),
            other => Err(format!("unknown maintenance kind {other:?} (repack, vacuum, analyze, reindex)")),
        }
    }
}

/// What a schedule runs: a maintenance kind, a `backup`, or a `verify` (restore drill of the
/// database's latest good backup).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Repack,
    Vacuum,
    Analyze,
    Reindex,
    Backup,
    Verify,
}

impl ScheduleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Repack => "repack",
            Self::Vacuum => "vacuum",
            Self::Analyze => "analyze",
            Self::Reindex => "reindex",
            Self::Backup => "backup",
            Self::Verify => "verify",
        }
    }

    /// The maintenance it runs (None for backups and drills).
    pub fn maintenance(self) -> Option<MaintenanceKind> {
        match self {
            Self::Repack => Some(MaintenanceKind::Repack),
            Self::Vacuum => Some(MaintenanceKind::Vacuum),
            Self::Analyze => Some(MaintenanceKind::Analyze),
            Self::Reindex => Some(MaintenanceKind::Reindex),
            Self::Backup | Self::Verify => None,
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
    /// Longest one table's VACUUM, ANALYZE, REINDEX or pg_repack may run, e.g. `2h` (default
    /// the service's setting, 6h unless configured; at most 24h). Past it the table is
    /// reported as failed and the run goes on with the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    pub kind: ScheduleKind,
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
    pub kind: Option<ScheduleKind>,
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
    pub kind: ScheduleKind,
    pub cron: String,
    pub tables: Vec<String>,
    pub options: MaintenanceOptions,
    pub enabled: bool,
    /// The next slot; it starts then, or when the instance's maintenance window opens.
    pub next_run_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_operation_id: Option<Uuid>,
    pub version: i64,
    /// `policy`: created from the environment's backup policy (the tenant may change it).
    pub origin: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MaintenanceAccepted {
    pub operation: Operation,
}
