//! Durable operations and their logs.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

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
    ProvisionInstance,
    UpdateInstance,
    StartInstance,
    StopInstance,
    RestartInstance,
    DeleteInstance,
    BackupDatabase,
    VerifyBackup,
    RestoreDatabase,
    RenewCertificate,
    /// Removes the extensions an earlier repack left in a database (enqueued once, by a
    /// migration, for the databases repacked before repacks cleaned up after themselves).
    RemoveServiceExtensions,
    /// Gives a managed instance its pgBackRest stanza and WAL archiving, then a first full
    /// base backup (instances made before archiving existed).
    EnableArchiving,
    /// A pgBackRest base backup of a managed instance (full or differential), then `expire`.
    BaseBackup,
    /// The archive's end restored into a scratch cluster, started and checked.
    PitrDrill,
    /// A managed instance restored to a point in time, in place or into a new instance.
    RestoreInstance,
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
            Self::ProvisionInstance => "provision_instance",
            Self::UpdateInstance => "update_instance",
            Self::StartInstance => "start_instance",
            Self::StopInstance => "stop_instance",
            Self::RestartInstance => "restart_instance",
            Self::DeleteInstance => "delete_instance",
            Self::BackupDatabase => "backup_database",
            Self::VerifyBackup => "verify_backup",
            Self::RestoreDatabase => "restore_database",
            Self::RenewCertificate => "renew_certificate",
            Self::RemoveServiceExtensions => "remove_service_extensions",
            Self::EnableArchiving => "enable_archiving",
            Self::BaseBackup => "base_backup",
            Self::PitrDrill => "pitr_drill",
            Self::RestoreInstance => "restore_instance",
        }
    }
}

impl AsRef<str> for OperationKind {
    fn as_ref(&self) -> &str {
        self.as_str()
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
            "provision_instance" => Self::ProvisionInstance,
            "update_instance" => Self::UpdateInstance,
            "start_instance" => Self::StartInstance,
            "stop_instance" => Self::StopInstance,
            "restart_instance" => Self::RestartInstance,
            "delete_instance" => Self::DeleteInstance,
            "backup_database" => Self::BackupDatabase,
            "verify_backup" => Self::VerifyBackup,
            "restore_database" => Self::RestoreDatabase,
            "renew_certificate" => Self::RenewCertificate,
            "remove_service_extensions" => Self::RemoveServiceExtensions,
            "enable_archiving" => Self::EnableArchiving,
            "base_backup" => Self::BaseBackup,
            "pitr_drill" => Self::PitrDrill,
            "restore_instance" => Self::RestoreInstance,
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
