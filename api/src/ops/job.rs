//! Every operation kind of the service, registered: [`Job`] is the closed set the engine's
//! workers decode and run (`dbaas_engine::JobSet`). Each kind is a type implementing
//! `dbaas_engine::Operation` that lives with its domain (`catalog::jobs` for databases and
//! credentials, `managed::jobs` for managed instances). Decoding a stored operation is strict:
//! an unknown kind or a payload with missing, mistyped or unknown fields is an error
//! (`unknown_kind`, `bad_params`), never a default.

use dbaas_client::OperationKind;
use dbaas_engine::{JobSet, OpError, Operation, Payload};
use sqlx::PgConnection;

use crate::operation::{OpContext, OperationRow};
use crate::state::AppState;

macro_rules! jobs {
    ($($variant:ident => $ty:ty),* $(,)?) => {
        /// Every operation kind, with its typed payload.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Job {
            $($variant($ty),)*
        }

        $(impl From<$ty> for Job {
            fn from(j: $ty) -> Self {
                Job::$variant(j)
            }
        })*

        impl Payload<OperationKind> for Job {
            fn kind(&self) -> OperationKind {
                match self {
                    $(Job::$variant(_) => <$ty as Operation>::KIND,)*
                }
            }

            fn params(&self) -> serde_json::Value {
                match self {
                    $(Job::$variant(j) => j.params(),)*
                }
            }
        }

        impl JobSet<AppState> for Job {
            fn decode(kind: OperationKind, params: &serde_json::Value) -> Result<Self, OpError> {
                let bad = |e: serde_json::Error| {
                    OpError::permanent("bad_params", format!("parameters of {} operation: {e}", kind.as_str()))
                };
                Ok(match kind {
                    $(OperationKind::$variant => Job::$variant(serde_json::from_value(params.clone()).map_err(bad)?),)*
                })
            }

            async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
                match self {
                    $(Job::$variant(j) => j.run(ctx).await,)*
                }
            }

            async fn on_outcome(
                &self,
                tx: &mut PgConnection,
                op: &OperationRow,
                ok: bool,
            ) -> Result<(), sqlx::Error> {
                match self {
                    $(Job::$variant(j) => j.on_outcome(tx, op, ok).await?,)*
                }
                // What the reconciler stored about the database may predate this change.
                if crate::catalog::reconcile::changes_catalog(op.kind) {
                    crate::catalog::reconcile::forget(tx, op.target_id).await?;
                }
                Ok(())
            }

            async fn cleanup(&self, ctx: &OpContext, last: bool) -> Result<(), OpError> {
                match self {
                    $(Job::$variant(j) => j.cleanup(ctx, last).await,)*
                }
            }
        }
    };
}

use crate::catalog::jobs as database;
use crate::managed::jobs as instance;
use crate::managed::pitr::drill;
use crate::managed::pitr::jobs as pitr;

jobs! {
    ProvisionDatabase => database::ProvisionDatabase,
    UpdateDatabase => database::UpdateDatabase,
    DeleteDatabase => database::DeleteDatabase,
    RotateCredential => database::RotateCredential,
    CreateLease => database::CreateLease,
    RevokeLease => database::RevokeLease,
    Maintenance => database::Maintenance,
    ProvisionInstance => instance::ProvisionInstance,
    UpdateInstance => instance::UpdateInstance,
    StartInstance => instance::StartInstance,
    StopInstance => instance::StopInstance,
    RestartInstance => instance::RestartInstance,
    DeleteInstance => instance::DeleteInstance,
    BackupDatabase => database::BackupDatabase,
    VerifyBackup => database::VerifyBackup,
    RestoreDatabase => database::RestoreDatabase,
    RenewCertificate => instance::RenewCertificate,
    RemoveServiceExtensions => database::RemoveServiceExtensions,
    EnableArchiving => pitr::EnableArchiving,
    BaseBackup => pitr::BaseBackup,
    PitrDrill => drill::PitrDrill,
    RestoreInstance => crate::managed::pitr::instance_restore::RestoreInstance,
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let id = Uuid::new_v4();
        let jobs: Vec<Job> = vec![
            database::ProvisionDatabase::default().into(),
            database::UpdateDatabase { drop_extensions: vec!["hstore".into()] }.into(),
            database::DeleteDatabase { grace_ms: Some(1000), force: false, final_backup: Some(id) }.into(),
            database::RotateCredential { credential_id: id }.into(),
            database::CreateLease { credential_id: id }.into(),
            database::RevokeLease { credential_id: id, reason: database::RevokeReason::Expired }.into(),
            instance::UpdateInstance { settings: [("work_mem".to_string(), "8MB".to_string())].into() }.into(),
            instance::StartInstance { reason: Some("health check".into()) }.into(),
            database::BackupDatabase { backup_id: id }.into(),
            database::VerifyBackup { backup_id: id }.into(),
            database::RestoreDatabase {
                action: database::RestoreAction::InPlace { backup_id: id, retain_hours: 24, grace_ms: None },
            }
            .into(),
            database::RestoreDatabase { action: database::RestoreAction::DropPrevious }.into(),
            pitr::EnableArchiving { reason: None }.into(),
            drill::PitrDrill { reason: None }.into(),
            crate::managed::pitr::instance_restore::RestoreInstance {
                to: dbaas_client::RecoveryTarget::Time(chrono::Utc::now()),
                from: Some(id),
            }
            .into(),
            pitr::BaseBackup { kind: dbaas_client::BaseBackupKind::Diff, reason: Some("schedule".into()) }.into(),
        ];
        for job in jobs {
            let back = Job::decode(job.kind(), &job.params()).unwrap();
            assert_eq!(back, job);
        }
    }

    #[test]
    fn unknown_kinds_and_malformed_payloads_are_errors() {
        assert!(OperationKind::try_from("defragment".to_string()).is_err());
        for (kind, params) in [
            ("rotate_credential", json!({})),
            ("rotate_credential", json!({"credential_id": "not-a-uuid"})),
            ("revoke_lease", json!({"credential_id": Uuid::nil(), "reason": "bored"})),
            ("delete_database", json!({"grace_ms": "soon"})),
            ("provision_database", json!({"readopt": true, "surprise": 1})),
            ("update_instance", json!({})),
        ] {
            let e = Job::decode(kind.parse().unwrap(), &params).unwrap_err();
            assert_eq!(e.code, "bad_params", "{kind} {params}: {e}");
        }
    }
}
