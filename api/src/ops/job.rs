//! One type per operation kind, in the spirit of crates.io's `BackgroundJob`: a typed serde
//! payload (the `params` column), `run` against the target, and `on_outcome`, which applies
//! the effect on the resource in the same state transaction that ends the operation.
//!
//! The types live with their domain (`catalog::jobs` for databases and credentials,
//! `managed::jobs` for managed instances); [`Job`] is the closed set of them. Decoding a stored
//! operation is strict: an unknown kind or a payload with missing, mistyped or unknown fields
//! is an error (`unknown_kind`, `bad_params`), never a default.

use std::future::Future;

use dbaas_client::OperationKind;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::PgConnection;

use super::queue::OperationRow;
use super::runner::OpContext;
use super::OpError;

/// One kind of operation.
pub trait Operation: Serialize + DeserializeOwned + Send + Sync + Sized + 'static {
    const KIND: OperationKind;

    /// Does the work; every step idempotent (a later attempt may repeat it).
    fn run(&self, ctx: &OpContext) -> impl Future<Output = Result<(), OpError>> + Send;

    /// The resource's change when the operation ends (`ok`: succeeded), inside the transaction
    /// that records the end.
    fn on_outcome(
        &self,
        tx: &mut PgConnection,
        op: &OperationRow,
        ok: bool,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Removes what an attempt that did not succeed may have left on the target; `last` says
    /// no attempt follows. Nothing by default.
    fn cleanup(&self, _ctx: &OpContext, _last: bool) -> impl Future<Output = Result<(), OpError>> + Send {
        async { Ok(()) }
    }
}

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

        impl Job {
            /// Decodes a stored operation: its kind column and params.
            pub fn decode(kind: OperationKind, params: &serde_json::Value) -> Result<Self, OpError> {
                let bad = |e: serde_json::Error| {
                    OpError::permanent("bad_params", format!("parameters of {} operation: {e}", kind.as_str()))
                };
                Ok(match kind {
                    $(OperationKind::$variant => Job::$variant(serde_json::from_value(params.clone()).map_err(bad)?),)*
                })
            }

            pub fn kind(&self) -> OperationKind {
                match self {
                    $(Job::$variant(_) => <$ty as Operation>::KIND,)*
                }
            }

            /// The params column.
            pub fn params(&self) -> serde_json::Value {
                let encoded = match self {
                    $(Job::$variant(j) => serde_json::to_value(j),)*
                };
                // Plain structs of strings, numbers and ids always encode.
                encoded.unwrap_or(serde_json::Value::Null)
            }

            pub async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
                match self {
                    $(Job::$variant(j) => j.run(ctx).await,)*
                }
            }

            pub async fn on_outcome(
                &self,
                tx: &mut PgConnection,
                op: &OperationRow,
                ok: bool,
            ) -> Result<(), sqlx::Error> {
                match self {
                    $(Job::$variant(j) => j.on_outcome(tx, op, ok).await,)*
                }
            }

            pub async fn cleanup(&self, ctx: &OpContext, last: bool) -> Result<(), OpError> {
                match self {
                    $(Job::$variant(j) => j.cleanup(ctx, last).await,)*
                }
            }
        }
    };
}

use crate::catalog::jobs as database;
use crate::managed::jobs as instance;

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
