//! The proxy's pools and traffic, read from its admin console (`SHOW POOLS`, `SHOW STATS`)
//! and named as pgbouncer_exporter names them, for the host's metrics.

use dbaas_domain::state::AppState;
use dbaas_engine::OpError;
use dbaas_hosts::HostRecord;

use super::daemon::Daemon;

/// One sample: metric name, labels, value.
pub type Sample = (&'static str, Vec<(&'static str, String)>, f64);

/// `SHOW POOLS` columns and the gauges they become (per database and user).
const POOL_GAUGES: &[(&str, &str)] = &[
    ("cl_active", "pgbouncer_pools_client_active_connections"),
    ("cl_waiting", "pgbouncer_pools_client_waiting_connections"),
    ("sv_active", "pgbouncer_pools_server_active_connections"),
    ("sv_idle", "pgbouncer_pools_server_idle_connections"),
    ("sv_used", "pgbouncer_pools_server_used_connections"),
    ("sv_login", "pgbouncer_pools_server_login_connections"),
];

/// `SHOW STATS` columns and the counters they become (per database), with the divisor
/// that makes seconds of microseconds.
const STAT_COUNTERS: &[(&str, &str, f64)] = &[
    ("total_query_count", "pgbouncer_stats_queries_pooled_total", 1.0),
    ("total_xact_count", "pgbouncer_stats_sql_transactions_pooled_total", 1.0),
    ("total_received", "pgbouncer_stats_received_bytes_total", 1.0),
    ("total_sent", "pgbouncer_stats_sent_bytes_total", 1.0),
    ("total_query_time", "pgbouncer_stats_queries_duration_seconds_total", 1e6),
    ("total_wait_time", "pgbouncer_stats_client_wait_seconds_total", 1e6),
];

pub async fn read(state: &AppState, host: &HostRecord) -> Result<Vec<Sample>, OpError> {
    let Some(port) = host.proxy_port else { return Ok(Vec::new()) };
    let exec = state.hosts.get(host, &state.key).await?;
    let daemon = Daemon::new(exec, host, port as u16)?;
    let pools = daemon.table("SHOW POOLS").await?;
    let stats = daemon.table("SHOW STATS").await?;
    Ok(samples(&pools, &stats))
}

/// Rows of a `|`-separated table with its header, as (column -> value) lookups.
fn rows(text: &str) -> Vec<Vec<(&str, &str)>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else { return Vec::new() };
    let cols: Vec<&str> = header.split('|').collect();
    lines.map(|l| cols.iter().copied().zip(l.split('|')).collect()).collect()
}

fn get<'a>(row: &[(&str, &'a str)], col: &str) -> Option<&'a str> {
    row.iter().find(|(c, _)| *c == col).map(|(_, v)| *v)
}

pub fn samples(pools: &str, stats: &str) -> Vec<Sample> {
    let mut out: Vec<Sample> = vec![("pgbouncer_up", Vec::new(), 1.0)];
    for row in rows(pools) {
        let (Some(db), Some(user)) = (get(&row, "database"), get(&row, "user")) else { continue };
        if db == "pgbouncer" {
            continue;
        }
        let labels = vec![("database", db.to_string()), ("user", user.to_string())];
        for (col, name) in POOL_GAUGES {
            if let Some(v) = get(&row, col).and_then(|v| v.parse::<f64>().ok()) {
                out.push((name, labels.clone(), v));
            }
        }
        let wait = get(&row, "maxwait").and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + get(&row, "maxwait_us").and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 1e6;
        out.push(("pgbouncer_pools_client_maxwait_seconds", labels, wait));
    }
    for row in rows(stats) {
        let Some(db) = get(&row, "database") else { continue };
        if db == "pgbouncer" {
            continue;
        }
        for (col, name, div) in STAT_COUNTERS {
            if let Some(v) = get(&row, col).and_then(|v| v.parse::<f64>().ok()) {
                out.push((name, vec![("database", db.to_string())], v / div));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_stats_under_exporter_names() {
        let pools = "database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|sv_active_cancel|sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode\n\
            acme_app|acme_app__read|3|2|0|0|1|0|0|4|0|0|0|1|500000|transaction\n\
            pgbouncer|pgbouncer|1|0|0|0|0|0|0|0|0|0|0|0|0|statement\n";
        let stats = "database|total_xact_count|total_query_count|total_received|total_sent|total_xact_time|total_query_time|total_wait_time|avg_xact_count\n\
            acme_app|10|20|300|400|1000|2000000|3000000|1\n";
        let s = samples(pools, stats);
        let find = |n: &str| s.iter().find(|(m, _, _)| *m == n).map(|(_, l, v)| (l.clone(), *v));
        assert_eq!(find("pgbouncer_up").map(|x| x.1), Some(1.0));
        let (labels, waiting) = find("pgbouncer_pools_client_waiting_connections").expect("waiting");
        assert_eq!(waiting, 2.0);
        assert_eq!(labels, vec![("database", "acme_app".to_string()), ("user", "acme_app__read".to_string())]);
        assert_eq!(find("pgbouncer_pools_client_maxwait_seconds").map(|x| x.1), Some(1.5));
        assert_eq!(find("pgbouncer_stats_queries_duration_seconds_total").map(|x| x.1), Some(2.0));
        assert_eq!(find("pgbouncer_stats_queries_pooled_total").map(|x| x.1), Some(20.0));
        assert!(
            !s.iter().any(|(_, l, _)| l.iter().any(|(_, v)| v == "pgbouncer")),
            "the console's own pool is not a database"
        );
    }
}
