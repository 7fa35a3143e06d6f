//! Worker loops: claim, run with a heartbeat, then finish, retry later or give up; at
//! shutdown, stop claiming and, past the grace period, hand running attempts back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::OpContext;
use crate::error::OpError;
use crate::host::Host;
use crate::job::JobSet;
use crate::queue::{self, OperationRow, Status};
use crate::runner;

/// Starts the workers. `shutdown` stops them claiming; `hand_back` stops their running
/// attempts and puts those operations back in the queue at once (the process is going away).
pub fn spawn<S: Host, J: JobSet<S>>(
    state: S,
    shutdown: CancellationToken,
    hand_back: CancellationToken,
) -> Vec<JoinHandle<()>> {
    (0..state.worker_config().workers)
        .map(|_| {
            let state = state.clone();
            let shutdown = shutdown.clone();
            let hand_back = hand_back.clone();
            tokio::spawn(async move { worker_loop::<S, J>(state, shutdown, hand_back).await })
        })
        .collect()
}

async fn worker_loop<S: Host, J: JobSet<S>>(state: S, shutdown: CancellationToken, hand_back: CancellationToken) {
    while !shutdown.is_cancelled() {
        // Register interest before looking, so a NOTIFY between the two is not missed.
        let wakeup = state.job_wakeup().notified();
        let config = state.worker_config();
        match queue::claim::<S>(state.engine_db(), &config.worker_id, config.lease, config.tenant_concurrency).await {
            Ok(Some(op)) => run_claimed::<S, J>(&state, op, &hand_back).await,
            Ok(None) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wakeup => {}
                    _ = tokio::time::sleep(config.poll_interval) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming operations failed; the state database may be down");
                tokio::time::sleep(state.worker_config().poll_interval).await;
            }
        }
    }
}

/// Why an attempt ended without a result of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Cancelled on request (seen by a heartbeat).
    Cancelled,
    /// Another worker holds the operation now, or could: the claim was lost, or no heartbeat
    /// succeeded for long enough that the lease may have run out.
    Lost,
    /// This process is shutting down and the grace period is over: the attempt is stopped
    /// and the operation handed back to the queue.
    HandedBack,
}

async fn run_claimed<S: Host, J: JobSet<S>>(state: &S, op: OperationRow<S::Kind>, hand_back: &CancellationToken) {
    let started = Instant::now();
    let worker = state.worker_config().worker_id.clone();
    let cancel = CancellationToken::new();
    let stop = Arc::new(std::sync::Mutex::new(None::<Stop>));
    let heartbeat = tokio::spawn(heartbeat_loop(state.clone(), op.id, cancel.clone(), stop.clone()));
    let ctx = OpContext { state: state.clone(), op: op.clone() };
    ctx.log("info", &format!("attempt {} of {} started by {worker}", op.attempts, op.max_attempts)).await;
    // The stored payload decodes to its typed job, or the operation fails: an unknown kind or
    // a malformed payload is never run with defaults.
    let job = match J::decode(op.kind, &op.params) {
        Ok(job) => std::sync::Arc::new(job),
        Err(e) => {
            heartbeat.abort();
            ctx.log("error", &format!("failed: {e}")).await;
            finish::<S, J>(state, &op, Status::Failed, Some(&e)).await;
            return;
        }
    };
    let result = if op.cancel_requested {
        None
    } else {
        // The attempt runs in a task of its own: a panic in it ends only this attempt (the
        // operation fails with `panic`), and aborting the task stops its work at once when
        // the heartbeat says to (children spawned with kill_on_drop die with it).
        let attempt = {
            let ctx = OpContext { state: state.clone(), op: op.clone() };
            let job = job.clone();
            tokio::spawn(async move { runner::execute::<S, J>(&ctx, &job).await })
        };
        let abort = attempt.abort_handle();
        tokio::select! {
            r = attempt => Some(match r {
                Ok(r) => r,
                Err(e) if e.is_panic() => {
                    tracing::error!(operation = %op.id, kind = op.kind.as_ref(), "operation panicked: {e}");
                    Err(OpError::permanent("panic", "the operation hit an internal error (a bug); see the server log"))
                }
                Err(e) => Err(OpError::retryable("aborted", e.to_string())),
            }),
            _ = cancel.cancelled() => {
                abort.abort();
                None
            }
            _ = hand_back.cancelled() => {
                abort.abort();
                let mut stop = stop.lock().unwrap_or_else(|p| p.into_inner());
                stop.get_or_insert(Stop::HandedBack);
                None
            }
        }
    };
    heartbeat.abort();
    let stopped = *stop.lock().unwrap_or_else(|p| p.into_inner());
    if stopped == Some(Stop::HandedBack) {
        // Undo what the stopped attempt left half-made, as before any retry, then release
        // the claim so another replica starts at once rather than after the lease.
        runner::cleanup::<S, J>(&ctx, &job, false).await;
        let outcome = match queue::hand_back(state.engine_db(), &op, &worker).await {
            Ok(true) => "handed_back",
            Ok(false) => "lost",
            Err(e) => {
                tracing::warn!(error = %e, operation = %op.id, "handing back failed; another worker resumes it after the lease");
                "lost"
            }
        };
        state.attempt_finished(op.kind, outcome, None);
        return;
    }
    let lost = stopped == Some(Stop::Lost);
    if lost {
        ctx.log("warn", "attempt stopped: the claim was lost or could not be renewed within the lease").await;
    }
    // An attempt that did not succeed (and was not taken over) may have left things behind.
    if !matches!(result, Some(Ok(()))) && !lost {
        let retried = matches!(&result, Some(Err(e)) if e.retryable && op.attempts < op.max_attempts);
        runner::cleanup::<S, J>(&ctx, &job, !retried).await;
    }

    // Test hook: the attempt is done but not yet recorded, as when its process is frozen
    // right here; its claim lapses meanwhile and another worker may take the operation over.
    #[cfg(feature = "test-hooks")]
    if let Some(ms) = std::env::var("DBAAS_TEST_PAUSE_BEFORE_OUTCOME_MS").ok().and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let outcome = match result {
        Some(Ok(())) => {
            finish::<S, J>(state, &op, Status::Succeeded, None).await;
            "succeeded"
        }
        Some(Err(e)) if e.retryable && op.attempts < op.max_attempts => {
            match queue::retry_later(state.engine_db(), &op, &worker, &e).await {
                Ok(Some(_)) => "retrying",
                Ok(None) => {
                    tracing::warn!(operation = %op.id, error = %e, "claim lost to another worker; this attempt's failure is not recorded");
                    "lost"
                }
                Err(err) => {
                    tracing::error!(error = %err, operation = %op.id, "re-queueing failed");
                    "retrying"
                }
            }
        }
        Some(Err(e)) => {
            finish::<S, J>(state, &op, Status::Failed, Some(&e)).await;
            "failed"
        }
        None if lost => {
            tracing::warn!(operation = %op.id, "claim lost to another worker; abandoning this attempt");
            "lost"
        }
        None => {
            let e = OpError::permanent("cancelled", "cancelled on request");
            finish::<S, J>(state, &op, Status::Cancelled, Some(&e)).await;
            "cancelled"
        }
    };
    state.attempt_finished(op.kind, outcome, Some(started.elapsed()));
}

async fn finish<S: Host, J: JobSet<S>>(state: &S, op: &OperationRow<S::Kind>, status: Status, error: Option<&OpError>) {
    // The state database may blip; the work is done, so keep trying to record it.
    for attempt in 0..5 {
        match runner::complete::<S, J>(state, op, Some(&state.worker_config().worker_id), status, error).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!(operation = %op.id, "claim lost to another worker; this attempt's outcome is not recorded");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, operation = %op.id, attempt, "recording the outcome failed");
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
        }
    }
}

/// Renews the claim every lease/3. Stops the attempt (through `cancel`) when a cancel is
/// requested, when the claim is gone, and when no renewal has succeeded for 80% of the lease:
/// past that point another worker may claim the operation, so this attempt must not go on
/// (a slow or unreachable state database counts the same as a lost claim).
async fn heartbeat_loop<S: Host>(
    state: S,
    id: uuid::Uuid,
    cancel: CancellationToken,
    stop: Arc<std::sync::Mutex<Option<Stop>>>,
) {
    let lease = state.worker_config().lease;
    let every = lease / 3;
    let deadline = lease.mul_f64(0.8);
    let mut last_ok = Instant::now();
    let end = |why: Stop| {
        *stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        cancel.cancel();
    };
    loop {
        tokio::time::sleep(every).await;
        let sent = Instant::now();
        let renewal = queue::heartbeat(state.engine_db(), id, &state.worker_config().worker_id, lease);
        match tokio::time::timeout(every, renewal).await {
            Ok(Ok(Some(false))) => last_ok = sent,
            Ok(Ok(Some(true))) => return end(Stop::Cancelled),
            Ok(Ok(None)) => return end(Stop::Lost),
            Ok(Err(e)) => tracing::warn!(error = %e, operation = %id, "heartbeat failed"),
            Err(_) => tracing::warn!(operation = %id, "heartbeat timed out"),
        }
        if last_ok.elapsed() >= deadline {
            tracing::error!(operation = %id, "no heartbeat succeeded within the lease; stopping this attempt");
            return end(Stop::Lost);
        }
    }
}
