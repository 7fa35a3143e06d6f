//! Periodic health checks of managed instances. A cluster that stopped answering is marked
//! `down`; when the instance has `auto_restart`, a start operation is enqueued (at most one
//! open operation per instance, so replicas checking at once do not pile up restarts). A
//! serving instance whose certificate expires within the renewal window gets a renewal.

use dbaas_domain::catalog::conn::InstanceTarget;
use tokio_util::sync::CancellationToken;

use dbaas_domain::catalog::conn::{InstanceRow, INSTANCE_COLUMNS, MAINTENANCE_DB};
use dbaas_domain::operation as queue;
use dbaas_domain::state::AppState;

pub fn spawn(state: AppState, shutdown: CancellationToken) {
    let interval = state.engine.health_interval;
    dbaas_engine::periodic::every(state, shutdown, interval, "health check", |s| async move { pass(&s).await });
}

async fn pass(state: &AppState) -> Result<(), sqlx::Error> {
    // Only instances that should be serving: not while an operation works on them.
    let rows: Vec<InstanceRow> = sqlx::query_as(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.kind = 'managed' AND i.status = 'ready' \
         AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.target_id = i.id AND o.status IN ('queued', 'running'))"
    ))
    .fetch_all(&state.db)
    .await?;
    for inst in rows {
        let problem = match inst.target(&state.key) {
            Ok(t) => match t.connect(MAINTENANCE_DB).await {
                Ok(_) => None,
                Err(e) => Some(e.message),
            },
            Err(e) => Some(e.to_string()),
        };
        let serving = problem.is_none();
        record(state, &inst, problem).await?;
        if serving && super::certs::due(inst.cert_not_after, chrono::Utc::now(), state.engine.cert_renew_before) {
            enqueue_renewal(state, &inst).await?;
        }
    }
    Ok(())
}

/// Enqueues a certificate renewal unless an operation already works on the instance (the
/// row lock makes replicas checking at once enqueue one).
async fn enqueue_renewal(state: &AppState, inst: &InstanceRow) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    if idle_and_locked(&mut tx, inst).await? {
        let expires = inst.cert_not_after.map(|t| t.to_rfc3339()).unwrap_or_default();
        let job = super::jobs::RenewCertificate { reason: Some(format!("expires {expires}")) };
        let op = super::enqueue(&mut tx, inst.id, &job).await?;
        queue::log(&mut *tx, op, "info", &format!("the server certificate expires {expires}: renewing it")).await?;
        tracing::info!(instance = %inst.name, expires = %expires, "certificate renewal enqueued");
    }
    tx.commit().await
}

async fn record(state: &AppState, inst: &InstanceRow, problem: Option<String>) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    sqlx::query("UPDATE instances SET health = $2, health_message = $3, health_checked_at = now() WHERE id = $1")
        .bind(inst.id)
        .bind(if problem.is_some() { "down" } else { "healthy" })
        .bind(&problem)
        .execute(&mut *tx)
        .await?;
    if let (Some(p), true) = (&problem, inst.auto_restart) {
        // Lock the row so two replicas seeing the same outage enqueue one start.
        if idle_and_locked(&mut tx, inst).await? {
            let job = super::jobs::StartInstance { reason: Some("health check".into()) };
            let op = super::enqueue(&mut tx, inst.id, &job).await?;
            queue::log(&mut *tx, op, "warn", &format!("health check: the server is down ({p}); restarting it")).await?;
            tracing::warn!(instance = %inst.name, problem = %p, "managed instance down; restart enqueued");
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Whether the instance is ready with no operation open, locking its row until the
/// transaction ends (replicas checking at once enqueue one operation).
async fn idle_and_locked(tx: &mut sqlx::PgConnection, inst: &InstanceRow) -> Result<bool, sqlx::Error> {
    let busy: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM operations WHERE target_id = $1 AND status IN ('queued', 'running')) \
         FROM instances WHERE id = $1 AND status = 'ready' FOR UPDATE",
    )
    .bind(inst.id)
    .fetch_optional(tx)
    .await?
    .unwrap_or(true);
    Ok(!busy)
}
