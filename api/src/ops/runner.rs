//! Runs one operation through its typed [`Job`] and ends it, applying the job's effect on
//! the resource in the same transaction.

use dbaas_client::OperationStatus;
use uuid::Uuid;

use super::job::Job;
use super::queue::{self, OperationRow};
use super::OpError;
use crate::state::AppState;

pub struct OpContext {
    pub state: AppState,
    pub op: OperationRow,
}

impl OpContext {
    /// Adds a line to the operation's log (failures to log never fail the operation).
    pub async fn log(&self, level: &str, message: &str) {
        if let Err(e) = queue::log(&self.state.db, self.op.id, level, message).await {
            tracing::warn!(error = %e, operation = %self.op.id, "writing an operation log line failed");
        }
    }

    /// Logs the start of a step (and, in tests, pauses so a crash can land mid-operation).
    pub async fn step(&self, message: &str) {
        self.log("info", message).await;
        if !self.state.engine.step_delay.is_zero() {
            tokio::time::sleep(self.state.engine.step_delay).await;
        }
    }

    pub fn target_id(&self) -> Uuid {
        self.op.target_id
    }
}

pub async fn execute(ctx: &OpContext, job: &Job) -> Result<(), OpError> {
    #[cfg(feature = "test-hooks")]
    if std::env::var("DBAAS_TEST_PANIC_KIND").is_ok_and(|k| k == job.kind().as_str()) {
        panic!("test hook: a panic in {}", job.kind().as_str());
    }
    job.run(ctx).await
}

/// Removes what an interrupted attempt may have left on the target (a killed pg_repack's
/// objects). Called when an attempt ends without success, before any retry; `last` says no
/// attempt follows (failed for good, or cancelled).
pub async fn cleanup(ctx: &OpContext, job: &Job, last: bool) {
    if let Err(e) = job.cleanup(ctx, last).await {
        ctx.log("warn", &format!("cleanup after the interrupted attempt failed: {e}")).await;
    }
}

/// Ends the operation and applies its effect on the resource, in one transaction. An
/// operation whose stored payload cannot be decoded ends without effect (it never ran).
pub async fn complete(
    state: &AppState,
    op: &OperationRow,
    worker: Option<&str>,
    status: OperationStatus,
    error: Option<&OpError>,
) -> Result<bool, sqlx::Error> {
    // A worker records its outcome through the engine's pool; a cancel from HTTP through the main one.
    let mut tx = if worker.is_some() { state.engine_db.begin().await? } else { state.db.begin().await? };
    if !queue::finish(&mut tx, op.id, worker, status, error).await? {
        return Ok(false);
    }
    // The closing log line commits with the outcome: an attempt that lost its claim (frozen,
    // then resumed after another worker finished the operation) writes none.
    let (level, line) = match (status, error) {
        (OperationStatus::Succeeded, _) => ("info", "succeeded".to_string()),
        (OperationStatus::Cancelled, _) => ("warn", "cancelled on request".to_string()),
        (_, Some(e)) => ("error", format!("failed: {e}")),
        (s, None) => ("error", s.as_str().to_string()),
    };
    queue::log(&mut *tx, op.id, level, &line).await?;
    match Job::decode(op.kind, &op.params) {
        Ok(job) => job.on_outcome(&mut tx, op, status == OperationStatus::Succeeded).await?,
        Err(e) => tracing::error!(operation = %op.id, error = %e, "operation ended without effect: undecodable"),
    }
    // What the reconciler stored about the database may predate this operation's change.
    if crate::catalog::reconcile::changes_catalog(op.kind) {
        crate::catalog::reconcile::forget(&mut tx, op.target_id).await?;
    }
    tx.commit().await?;
    Ok(true)
}
