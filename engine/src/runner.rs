//! Runs one operation through its typed job and ends it, applying the job's effect on the
//! resource in the same transaction.

use crate::context::OpContext;
use crate::error::OpError;
use crate::host::Host;
use crate::job::JobSet;
use crate::queue::{self, OperationRow, Status};

pub async fn execute<S: Host, J: JobSet<S>>(ctx: &OpContext<S>, job: &J) -> Result<(), OpError> {
    #[cfg(feature = "test-hooks")]
    if std::env::var("DBAAS_TEST_PANIC_KIND").is_ok_and(|k| k == job.kind().as_ref()) {
        panic!("test hook: a panic in {}", job.kind().as_ref());
    }
    job.run(ctx).await
}

/// Removes what an interrupted attempt may have left on the target (a killed pg_repack's
/// objects). Called when an attempt ends without success, before any retry; `last` says no
/// attempt follows (failed for good, or cancelled).
pub async fn cleanup<S: Host, J: JobSet<S>>(ctx: &OpContext<S>, job: &J, last: bool) {
    if let Err(e) = job.cleanup(ctx, last).await {
        ctx.log("warn", &format!("cleanup after the interrupted attempt failed: {e}")).await;
    }
}

/// Ends the operation and applies its effect on the resource, in one transaction. An
/// operation whose stored payload cannot be decoded ends without effect (it never ran).
pub async fn complete<S: Host, J: JobSet<S>>(
    state: &S,
    op: &OperationRow<S::Kind>,
    worker: Option<&str>,
    status: Status,
    error: Option<&OpError>,
) -> Result<bool, sqlx::Error> {
    // A worker records its outcome through the engine's pool; a cancel from HTTP through the main one.
    let mut tx = if worker.is_some() { state.engine_db().begin().await? } else { state.db().begin().await? };
    if !queue::finish(&mut tx, op.id, worker, status, error).await? {
        return Ok(false);
    }
    // The closing log line commits with the outcome: an attempt that lost its claim (frozen,
    // then resumed after another worker finished the operation) writes none.
    let (level, line) = match (status, error) {
        (Status::Succeeded, _) => ("info", "succeeded".to_string()),
        (Status::Cancelled, _) => ("warn", "cancelled on request".to_string()),
        (_, Some(e)) => ("error", format!("failed: {e}")),
        (s, None) => ("error", s.as_str().to_string()),
    };
    queue::log(&mut *tx, op.id, level, &line).await?;
    match J::decode(op.kind, &op.params) {
        Ok(job) => job.on_outcome(&mut tx, op, status == Status::Succeeded).await?,
        Err(e) => tracing::error!(operation = %op.id, error = %e, "operation ended without effect: undecodable"),
    }
    tx.commit().await?;
    Ok(true)
}
