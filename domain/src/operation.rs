//! The service's operations as the engine (`dbaas-engine`) runs them: the process state as
//! the engine's [`Host`], the concrete context and row types every job uses, enqueueing, and
//! a row's API model. The closed set of kinds is registered by the service (`dbaas-api`'s
//! `ops::job`).

use std::time::Duration;

use dbaas_client::{Operation, OperationKind, OperationStatus};
use dbaas_engine::{Host, Payload, Status, Urgent, WorkerConfig};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

use crate::metrics::OpLabels;
use crate::state::AppState;

pub use dbaas_engine::queue::log;

/// What a job's code gets: the process state and its operation's row.
pub type OpContext = dbaas_engine::OpContext<AppState>;
/// A row of `operations`, its kind decoded to [`OperationKind`].
pub type OperationRow = dbaas_engine::OperationRow<OperationKind>;

/// The columns of an operation row (`FROM operations o`), its tenant's name included.
pub const OPERATION_COLUMNS: &str = "o.id, o.kind, o.target_kind, o.target_id, o.tenant_id, \
    (SELECT name FROM tenants WHERE id = o.tenant_id) AS tenant_name, o.params, o.status, o.attempts, \
    o.max_attempts, o.run_after, o.locked_by, o.cancel_requested, o.error_code, o.error_message, \
    o.error_retryable, o.created_at, o.started_at, o.finished_at, o.seq";

impl Host for AppState {
    type Kind = OperationKind;
    const OPERATION_COLUMNS: &'static str = OPERATION_COLUMNS;
    /// Lease revocations go first and wait only behind operations on the same credential:
    /// an expired login must go on time.
    const URGENT: Option<Urgent> = Some(Urgent { kind: "revoke_lease", key: "credential_id" });

    fn db(&self) -> &PgPool {
        &self.db
    }
    fn engine_db(&self) -> &PgPool {
        &self.engine_db
    }
    fn worker_config(&self) -> &WorkerConfig {
        &self.worker
    }
    fn job_wakeup(&self) -> &Notify {
        &self.job_wakeup
    }
    fn op_events(&self) -> &broadcast::Sender<Uuid> {
        &self.op_events
    }
    fn attempt_finished(&self, kind: OperationKind, outcome: &'static str, took: Option<Duration>) {
        let labels = OpLabels { kind: kind.as_str().to_string(), outcome: outcome.into() };
        self.metrics.operations.get_or_create(&labels).inc();
        if let Some(took) = took {
            self.metrics.operation_duration.get_or_create(&labels).observe(took.as_secs_f64());
        }
    }
}

/// Enqueues an operation inside the caller's transaction; workers are woken at commit.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    job: &(impl Payload<OperationKind> + ?Sized),
    target_kind: &str,
    target_id: Uuid,
    tenant_id: Option<Uuid>,
) -> Result<OperationRow, sqlx::Error> {
    dbaas_engine::queue::enqueue::<AppState>(tx, job, target_kind, target_id, tenant_id).await
}

/// [`enqueue`] on a connection inside the caller's transaction (an operation's outcome).
pub async fn enqueue_on(
    conn: &mut sqlx::PgConnection,
    job: &(impl Payload<OperationKind> + ?Sized),
    target_kind: &str,
    target_id: Uuid,
) -> Result<OperationRow, sqlx::Error> {
    dbaas_engine::queue::enqueue_on::<AppState>(conn, job, target_kind, target_id, None).await
}

pub async fn fetch<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<OperationRow>, sqlx::Error> {
    dbaas_engine::queue::fetch::<AppState>(db, id).await
}

pub fn status_model(status: Status) -> OperationStatus {
    match status {
        Status::Queued => OperationStatus::Queued,
        Status::Running => OperationStatus::Running,
        Status::Succeeded => OperationStatus::Succeeded,
        Status::Failed => OperationStatus::Failed,
        Status::Cancelled => OperationStatus::Cancelled,
    }
}

/// A row as the API shows it.
pub trait OperationModel {
    fn to_model(&self) -> Operation;
}

impl OperationModel for OperationRow {
    fn to_model(&self) -> Operation {
        let status = status_model(self.status);
        Operation {
            id: self.id,
            kind: self.kind,
            status,
            target_kind: self.target_kind.clone(),
            target_id: self.target_id,
            tenant: self.tenant_name.clone(),
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            cancel_requested: self.cancel_requested,
            error: match (&self.error_code, &self.error_message) {
                (Some(code), Some(message)) => Some(dbaas_client::OperationError {
                    code: code.clone(),
                    message: message.clone(),
                    retryable: self.error_retryable.unwrap_or(false),
                }),
                _ => None,
            },
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            next_attempt_at: (status == OperationStatus::Queued).then_some(self.run_after),
        }
    }
}
