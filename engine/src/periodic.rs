//! Background loops that run one pass every interval until shutdown (reaper, scheduler,
//! retention, health checks, collectors). A failed pass is logged and the loop goes on.
//! Passes that must run once per interval across replicas take a session advisory lock per
//! object ([`try_lock`]) and then check, by the state database's clock, that no replica did
//! the work while they waited ([`fresh`]).

use std::future::Future;
use std::time::Duration;

use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::host::Host;

pub fn every<S, F, Fut, T>(state: S, shutdown: CancellationToken, interval: Duration, what: &'static str, pass: F)
where
    S: Clone + Send + 'static,
    F: Fn(S) -> Fut + Send + 'static,
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

/// Takes the session advisory lock `key` on `conn` if no other session holds it.
pub async fn try_lock(conn: &mut PgConnection, key: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))").bind(key).fetch_one(&mut *conn).await
}

pub async fn unlock(conn: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock(hashtext($1))").bind(key).execute(&mut *conn).await.map(|_| ())
}

/// Whether the row of `id` in `table` (keyed by `column`; both constants of ours) was
/// collected within the interval, by the state database's clock: another replica collected
/// while this one waited for the lock.
pub async fn fresh<S: Host>(
    state: &S,
    table: &str,
    column: &str,
    id: Uuid,
    interval_ms: i64,
) -> Result<bool, sqlx::Error> {
    let age_ms: Option<f64> = sqlx::query_scalar(&format!(
        "SELECT (extract(epoch FROM now() - collected_at) * 1000)::float8 FROM {table} WHERE {column} = $1"
    ))
    .bind(id)
    .fetch_optional(state.db())
    .await?;
    Ok(age_ms.is_some_and(|a| a < interval_ms as f64))
}

/// Runs `work` for each id of `due` that no other replica is working on, under the session
/// advisory lock `<prefix>:<id>` (released after it). `work` says whether it did the work
/// (it may find another replica just did); returns how many it did here.
pub async fn each_locked<S: Host, F, Fut>(
    state: &S,
    prefix: &str,
    due: Vec<Uuid>,
    mut work: F,
) -> Result<usize, sqlx::Error>
where
    F: FnMut(Uuid) -> Fut,
    Fut: Future<Output = Result<bool, sqlx::Error>>,
{
    let mut done = 0;
    let mut lock_conn = state.db().acquire().await?;
    for id in due {
        let key = format!("{prefix}:{id}");
        if !try_lock(&mut lock_conn, &key).await? {
            continue;
        }
        let result = work(id).await;
        unlock(&mut lock_conn, &key).await?;
        if result? {
            done += 1;
        }
    }
    Ok(done)
}
