//! Worker loops: claim, run with a heartbeat, then finish, retry later or give up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbaas_client::OperationStatus;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::queue::{self, OperationRow};
use super::runner::{self, OpContext};
use super::OpError;
use crate::metrics::OpLabels;
use crate::state::AppState;

pub fn spawn(state: AppState, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    (0..state.engine.workers)
        .map(|_| {
            let state = state.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { worker_loop(state, shutdown).await })
        })
        .collect()
}

async fn worker_loop(state: AppState, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        // Register interest before looking, so a NOTIFY between the two is not missed.
        let wakeup = state.job_wakeup.notified();
        match queue::claim(&state.db, &state.engine.worker_id, state.engine.lease).await {
            Ok(Some(op)) => run_claimed(&state, op).await,
            Ok(None) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wakeup => {}
                    _ = tokio::time::sleep(state.engine.poll_interval) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming operations failed; the state database may be down");
                tokio::time::sleep(state.engine.poll_interval).await;
            }
        }
    }
}

async fn run_claimed(state: &AppState, op: OperationRow) {
    let started = Instant::now();
    let worker = state.engine.worker_id.clone();
    let cancel = CancellationToken::new();
    let lost = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let (state, cancel, lost, id, worker) = (state.clone(), cancel.clone(), lost.clone(), op.id, worker.clone());
        tokio::spawn(async move {
            let every = state.engine.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                match queue::heartbeat(&state.db, id, &worker, state.engine.lease).await {
                    Ok(Some(false)) => {}
                    Ok(Some(true)) => {
                        cancel.cancel();
                        return;
                    }
                    Ok(None) => {
                        lost.store(true, Ordering::SeqCst);
                        cancel.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, operation = %id, "heartbeat failed"),
                }
            }
        })
    };
    let ctx = OpContext { state: state.clone(), op: op.clone() };
    ctx.log("info", &format!("attempt {} of {} started by {worker}", op.attempts, op.max_attempts)).await;
    let result = if op.cancel_requested {
        None
    } else {
        tokio::select! {
            r = runner::execute(&ctx) => Some(r),
            _ = cancel.cancelled() => None,
        }
    };
    heartbeat.abort();
    // An attempt that did not succeed (and was not taken over) may have left things behind.
    if !matches!(result, Some(Ok(()))) && !lost.load(Ordering::SeqCst) {
        let retried = matches!(&result, Some(Err(e)) if e.retryable && op.attempts < op.max_attempts);
        runner::cleanup(&ctx, !retried).await;
    }

    let outcome = match result {
        Some(Ok(())) => {
            ctx.log("info", "succeeded").await;
            finish(state, &op, OperationStatus::Succeeded, None).await;
            "succeeded"
        }
        Some(Err(e)) if e.retryable && op.attempts < op.max_attempts => {
            ctx.log("warn", &format!("attempt failed, will retry: {e}")).await;
            match queue::retry_later(&state.db, &op, &worker, &e).await {
                Ok(at) => ctx.log("info", &format!("next attempt at {}", at.to_rfc3339())).await,
                Err(err) => tracing::error!(error = %err, operation = %op.id, "re-queueing failed"),
            }
            "retrying"
        }
        Some(Err(e)) => {
            ctx.log("error", &format!("failed: {e}")).await;
            finish(state, &op, OperationStatus::Failed, Some(&e)).await;
            "failed"
        }
        None if lost.load(Ordering::SeqCst) => {
            tracing::warn!(operation = %op.id, "claim lost to another worker; abandoning this attempt");
            "lost"
        }
        None => {
            ctx.log("warn", "cancelled on request").await;
            let e = OpError::permanent("cancelled", "cancelled on request");
            finish(state, &op, OperationStatus::Cancelled, Some(&e)).await;
            "cancelled"
        }
    };
    let labels = OpLabels { kind: op.kind.clone(), outcome: outcome.into() };
    state.metrics.operations.get_or_create(&labels).inc();
    state.metrics.operation_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
}

async fn finish(state: &AppState, op: &OperationRow, status: OperationStatus, error: Option<&OpError>) {
    // The state database may blip; the work is done, so keep trying to record it.
    for attempt in 0..5 {
        match runner::complete(state, op, Some(&state.engine.worker_id), status, error).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, operation = %op.id, attempt, "recording the outcome failed");
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
        }
    }
}
