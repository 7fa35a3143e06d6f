//! Expires leases: an expired active lease gets a revoke operation (once, even with several
//! replicas running the reaper, thanks to SKIP LOCKED and the status change).

use crate::catalog::jobs::{RevokeLease, RevokeReason};
use tokio_util::sync::CancellationToken;

use crate::operation as queue;
use crate::state::AppState;

pub fn spawn(state: AppState, shutdown: CancellationToken) {
    let interval = state.engine.reaper_interval;
    dbaas_engine::periodic::every(state, shutdown, interval, "lease reaper", |s| async move { reap(&s).await });
}

pub async fn reap(state: &AppState) -> Result<usize, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let expired: Vec<(uuid::Uuid, uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "UPDATE credentials c SET status = 'revoking' FROM databases d \
         WHERE c.id IN (SELECT x.id FROM credentials x WHERE x.kind = 'lease' AND x.status = 'active' \
                          AND x.expires_at <= now() \
                          AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.kind = 'revoke_lease' \
                                AND o.target_id = x.database_id AND o.params->>'credential_id' = x.id::text \
                                AND (o.status IN ('queued', 'running') \
                                     OR o.finished_at > now() - $1 * interval '1 millisecond')) \
                        FOR UPDATE SKIP LOCKED) \
           AND d.id = c.database_id \
         RETURNING c.id, c.database_id, d.tenant_id",
    )
    // After a failed revocation, the next try waits ten reaper intervals.
    .bind(state.engine.reaper_interval.as_millis() as f64 * 10.0)
    .fetch_all(&mut *tx)
    .await?;
    for (cred, db, tenant) in &expired {
        let job = RevokeLease { credential_id: *cred, reason: RevokeReason::Expired };
        queue::enqueue(&mut tx, &job, "database", *db, Some(*tenant)).await?;
    }
    tx.commit().await?;
    if !expired.is_empty() {
        tracing::info!(count = expired.len(), "expired leases queued for revocation");
    }
    Ok(expired.len())
}
