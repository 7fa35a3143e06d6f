//! Background loops that run one pass every interval until shutdown (reaper, scheduler,
//! retention, health checks). A failed pass is logged and the loop goes on.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub fn every<F, Fut, T>(state: AppState, shutdown: CancellationToken, interval: Duration, what: &'static str, pass: F)
where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, sqlx::Error>> + Send,
    T: Send,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = pass(state.clone()).await {
                tracing::warn!(error = %e, "{what} pass failed");
            }
        }
    });
}
