//! Data-disk usage of the hosts that run managed instances: `df` on each host's data root
//! through its executor (local or SSH), once per metrics interval across replicas (advisory
//! lock per host, as for instances).

use uuid::Uuid;

use super::exposition::Sample;
use crate::hosts::executor::{Command, Executor};
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
    let samples = match disk(state, &host).await {
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
    let cmd = Command::new("/usr/bin/df", &["-P", "-B1", &host.data_root]).map_err(|e| e.to_string())?;
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), exec.run(&cmd))
        .await
        .map_err(|_| "df did not answer within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    parse_df(&out.stdout).ok_or_else(|| format!("unexpected df output: {:?}", out.stdout))
}

/// Size and available bytes from `df -P -B1 <path>` (the second line).
fn parse_df(text: &str) -> Option<(f64, f64)> {
    let line = text.lines().nth(1)?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let size = f.get(1)?.parse::<f64>().ok()?;
    let available = f.get(3)?.parse::<f64>().ok()?;
    Some((size, available))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output_is_read() {
        let out = "Filesystem      1-blocks       Used   Available Capacity Mounted on\n\
                   /dev/sda1   105089261568 52544630784 47161147392      53% /var/lib/my data\n";
        assert_eq!(parse_df(out), Some((105089261568.0, 47161147392.0)));
        assert_eq!(parse_df("df: /nope: No such file or directory\n"), None);
    }
}
