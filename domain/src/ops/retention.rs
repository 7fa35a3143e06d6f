//! Retention: the state database does not grow without bound. Every replica runs this loop;
//! an advisory lock lets one pass run at a time, and deletes go in batches so no pass holds
//! long locks or builds one huge transaction.
//!
//! Kept for `retention` (default 90 days): log lines of finished operations, audit rows,
//! schedule runs (their slots are long past, so exactly-once is not at stake). Idempotency
//! keys are kept for [`IDEMPOTENCY_TTL`]: a retry comes within minutes, not days.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// How long an `Idempotency-Key` answer is kept for replays.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
const BATCH: i64 = 5_000;

pub fn spawn(state: AppState, shutdown: CancellationToken) {
    let interval = state.engine.purge_interval;
    dbaas_engine::periodic::every(state, shutdown, interval, "retention", |s| async move {
        let n = purge(&s).await?;
        if n > 0 {
            tracing::info!(rows = n, "retention: purged old rows");
        }
        Ok(())
    });
}

/// One pass; returns how many rows went. Does nothing while another replica runs one.
pub async fn purge(state: &AppState) -> Result<u64, sqlx::Error> {
    let mut conn = state.engine_db.acquire().await?;
    let got: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('dbaas:retention'))").fetch_one(&mut *conn).await?;
    if !got {
        return Ok(0);
    }
    let keep_ms = state.engine.retention.as_millis() as f64;
    let statements = [
        (
            "DELETE FROM operation_logs WHERE id IN (SELECT l.id FROM operation_logs l JOIN operations o ON o.id = l.operation_id \
             WHERE o.finished_at < now() - $1 * interval '1 millisecond' LIMIT $2)",
            keep_ms,
        ),
        (
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < now() - $1 * interval '1 millisecond' LIMIT $2)",
            keep_ms,
        ),
        (
            "DELETE FROM schedule_runs WHERE (schedule_id, slot) IN (SELECT schedule_id, slot FROM schedule_runs \
             WHERE created_at < now() - $1 * interval '1 millisecond' LIMIT $2)",
            keep_ms,
        ),
        (
            "DELETE FROM idempotency_keys WHERE (principal, key) IN (SELECT principal, key FROM idempotency_keys \
             WHERE created_at < now() - $1 * interval '1 millisecond' LIMIT $2)",
            IDEMPOTENCY_TTL.as_millis() as f64,
        ),
        (
            // Portal sessions past their expiry (kept no longer than that).
            "DELETE FROM portal_sessions WHERE id_hash IN (SELECT id_hash FROM portal_sessions \
             WHERE expires_at < now() - $1 * interval '1 millisecond' LIMIT $2)",
            0.0,
        ),
    ];
    let mut total = 0;
    let result = async {
        for (sql, keep) in statements {
            loop {
                let n = sqlx::query(sql).bind(keep).bind(BATCH).execute(&mut *conn).await?.rows_affected();
                total += n;
                if n < BATCH as u64 {
                    break;
                }
            }
        }
        Ok::<_, sqlx::Error>(())
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext('dbaas:retention'))").execute(&mut *conn).await;
    result.map(|_| total)
}
