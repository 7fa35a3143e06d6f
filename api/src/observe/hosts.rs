//! Data-disk usage of the hosts that run managed instances: `df` on each host's data root
//! through its executor (local or SSH), once per metrics interval across replicas (advisory
//! lock per host, as for instances).

use uuid::Uuid;

use super::exposition::Sample;

use crate::state::AppState;
use crate::store::hosts::HostRecord;
use dbaas_engine::periodic::{each_locked, fresh};

/// Collects every host whose last reading is older than the interval.
pub async fn pass(state: &AppState) -> Result<usize, sqlx::Error> {
    let interval_ms = state.engine.metrics_interval.as_millis() as i64;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT h.id FROM hosts h LEFT JOIN host_metrics m ON m.host_id = h.id \
         WHERE m.collected_at IS NULL OR m.collected_at < now() - make_interval(secs => $1::float8 / 1000) \
         ORDER BY m.collected_at NULLS FIRST LIMIT 50",
    )
    .bind(interval_ms)
    .fetch_all(&state.db)
    .await?;
    each_locked(state, "dbaas:metrics:host", due, |id| collect(state, id, interval_ms)).await
}

async fn collect(state: &AppState, id: Uuid, interval_ms: i64) -> Result<bool, sqlx::Error> {
    if fresh(state, "host_metrics", "host_id", id, interval_ms).await? {
        return Ok(false);
    }
    let Some(host) = HostRecord::load(&state.db, id).await? else { return Ok(false) };
    let mut samples = match disk(state, &host).await {
        Ok((size, available)) => vec![
            Sample::new("dbaas_host_up", &[], 1.0),
            Sample::new("dbaas_host_data_disk_size_bytes", &[], size),
            Sample::new("dbaas_host_data_disk_available_bytes", &[], available),
        ],
        Err(e) => {
            tracing::debug!(host = %host.name, error = %e, "host disk not read");
            vec![Sample::new("dbaas_host_up", &[], 0.0)]
        }
    };
    if host.proxy_port.is_some() {
        samples.extend(proxy(state, &host).await);
    }
    sqlx::query(
        "INSERT INTO host_metrics (host_id, collected_at, samples) VALUES ($1, now(), $2) \
         ON CONFLICT (host_id) DO UPDATE SET collected_at = now(), samples = $2",
    )
    .bind(id)
    .bind(sqlx::types::Json(&samples))
    .execute(&state.db)
    .await?;
    Ok(true)
}

async fn disk(state: &AppState, host: &HostRecord) -> Result<(f64, f64), String> {
    let exec = state.hosts.get(host, &state.key).await.map_err(|e| e.to_string())?;
    let (size, available) =
        tokio::time::timeout(std::time::Duration::from_secs(10), dbaas_hosts::disk::space(&*exec, &host.data_root))
            .await
            .map_err(|_| "df did not answer within 10 s".to_string())?
            .map_err(|e| e.to_string())?;
    Ok((size as f64, available as f64))
}

/// The routing proxy's pools and traffic under pgbouncer_exporter's names (`pgbouncer_up` 0
/// when its console does not answer).
async fn proxy(state: &AppState, host: &HostRecord) -> Vec<Sample> {
    let read = dbaas_managed::proxy::stats::read(state, host);
    match tokio::time::timeout(std::time::Duration::from_secs(10), read).await {
        Ok(Ok(samples)) => samples
            .into_iter()
            .map(|(name, labels, value)| {
                let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                Sample::new(name, &labels, value)
            })
            .collect(),
        Ok(Err(e)) => {
            tracing::debug!(host = %host.name, error = %e.message, "proxy stats not read");
            vec![Sample::new("pgbouncer_up", &[], 0.0)]
        }
        Err(_) => vec![Sample::new("pgbouncer_up", &[], 0.0)],
    }
}
