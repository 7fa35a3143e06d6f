//! The service's own gauges, read from the state database at scrape time (cheap aggregate
//! queries on indexed columns; no per-database labels: `/metrics` is for the platform).

use super::exposition::{render, Sample};
use crate::state::AppState;

pub async fn gauges(state: &AppState) -> Result<String, sqlx::Error> {
    let mut out = vec![Sample::new("dbaas_workers", &[], state.engine.workers as f64)];
    // Attempts this replica's workers run now (their claims carry the replica's worker id).
    let busy: i64 = sqlx::query_scalar("SELECT count(*) FROM operations WHERE status = 'running' AND locked_by = $1")
        .bind(&state.engine.worker_id)
        .fetch_one(&state.db)
        .await?;
    out.push(Sample::new("dbaas_workers_busy", &[], busy as f64));
    let by_kind: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT kind, status, count(*)::float8 FROM operations WHERE status IN ('queued', 'running') \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&state.db)
    .await?;
    for (kind, status, n) in &by_kind {
        let name = if status == "queued" { "dbaas_operations_queued" } else { "dbaas_operations_running" };
        out.push(Sample::new(name, &[("kind", kind.as_str())], *n));
    }
    let (oldest, past): (f64, f64) = sqlx::query_as(
        "SELECT coalesce(extract(epoch FROM now() - min(run_after) FILTER (WHERE status = 'queued' AND run_after <= now())), 0)::float8, \
         (count(*) FILTER (WHERE status = 'running' AND locked_until < now()))::float8 \
         FROM operations WHERE status IN ('queued', 'running')",
    )
    .fetch_one(&state.db)
    .await?;
    out.push(Sample::new("dbaas_operations_oldest_queued_age_seconds", &[], oldest));
    out.push(Sample::new("dbaas_operations_past_lease", &[], past));
    let (active, expired): (f64, f64) = sqlx::query_as(
        "SELECT (count(*) FILTER (WHERE status = 'active'))::float8, \
         (count(*) FILTER (WHERE status IN ('active', 'revoking') AND expires_at < now()))::float8 \
         FROM credentials WHERE kind = 'lease' AND status <> 'revoked'",
    )
    .fetch_one(&state.db)
    .await?;
    out.push(Sample::new("dbaas_leases_active", &[], active));
    out.push(Sample::new("dbaas_leases_expired_unrevoked", &[], expired));
    let health: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT i.name, i.environment, coalesce(m.up, i.health = 'healthy', false) FROM instances i \
         LEFT JOIN instance_metrics m ON m.instance_id = i.id WHERE i.status NOT IN ('deleting', 'deleted') ORDER BY 1",
    )
    .fetch_all(&state.db)
    .await?;
    for (name, env, ok) in &health {
        let l = [("dbaas_instance", name.as_str()), ("environment", env.as_str())];
        out.push(Sample::new("dbaas_instance_health", &l, if *ok { 1.0 } else { 0.0 }));
    }
    let certs: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT name, environment, cert_not_after FROM instances \
         WHERE cert_not_after IS NOT NULL AND status NOT IN ('deleting', 'deleted') ORDER BY 1",
    )
    .fetch_all(&state.db)
    .await?;
    for (name, env, not_after) in &certs {
        let l = [("dbaas_instance", name.as_str()), ("environment", env.as_str())];
        out.push(Sample::new("dbaas_instance_certificate_expiry_timestamp_seconds", &l, not_after.timestamp() as f64));
    }
    let passes: Vec<(String, chrono::DateTime<chrono::Utc>, i64, i32, bool)> = sqlx::query_as(
        "SELECT i.name, p.collected_at, p.duration_ms, p.databases, p.error IS NULL FROM drift_passes p \
         JOIN instances i ON i.id = p.instance_id WHERE i.status NOT IN ('deleting', 'deleted') ORDER BY 1",
    )
    .fetch_all(&state.db)
    .await?;
    for (name, at, ms, databases, ok) in &passes {
        let l = [("dbaas_instance", name.as_str())];
        out.push(Sample::new("dbaas_drift_pass_timestamp_seconds", &l, at.timestamp() as f64));
        out.push(Sample::new("dbaas_drift_pass_duration_seconds", &l, *ms as f64 / 1000.0));
        out.push(Sample::new("dbaas_drift_pass_databases", &l, f64::from(*databases)));
        out.push(Sample::new("dbaas_drift_pass_ok", &l, if *ok { 1.0 } else { 0.0 }));
    }
    let hosts: Vec<(String, sqlx::types::Json<Vec<Sample>>)> =
        sqlx::query_as("SELECT h.name, m.samples FROM host_metrics m JOIN hosts h ON h.id = m.host_id ORDER BY h.name")
            .fetch_all(&state.db)
            .await?;
    for (name, samples) in hosts {
        for mut s in samples.0 {
            s.labels.insert(0, ("dbaas_host".into(), name.clone()));
            out.push(s);
        }
    }
    Ok(render(&out))
}
