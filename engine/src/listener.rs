//! One LISTEN connection per process, fanned out to workers and long-polling requests.

use std::time::Duration;

use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::host::Host;
use crate::queue::{JOBS_CHANNEL, OPS_CHANNEL};

pub fn spawn<S: Host>(state: S, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match listen(&state, &shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    // Workers keep polling meanwhile; long-polls fall back to their re-checks.
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}

async fn listen<S: Host>(state: &S, shutdown: &tokio_util::sync::CancellationToken) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(state.db()).await?;
    listener.listen_all([JOBS_CHANNEL, OPS_CHANNEL]).await?;
    // Anything enqueued while we were not listening is picked up by this wake-up.
    state.job_wakeup().notify_waiters();
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            n = listener.recv() => n?,
        };
        if n.channel() == JOBS_CHANNEL {
            state.job_wakeup().notify_waiters();
        } else if let Ok(id) = n.payload().parse::<Uuid>() {
            let _ = state.op_events().send(id);
        }
    }
}
