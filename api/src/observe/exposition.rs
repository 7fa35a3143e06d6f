//! Samples as the collector stores them, the metric families they belong to (names, types
//! and help of postgres_exporter where it has them, `dbaas_*` for what it lacks), and the
//! Prometheus text exposition format (version 0.0.4) they render to.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// One value of one series. Labels are kept in the order given; the renderer adds the
/// service's own (`tenant`, `database`, `environment`, `instance`) in front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub name: String,
    #[serde(default)]
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn new(name: &str, labels: &[(&str, &str)], value: f64) -> Self {
        Self {
            name: name.to_string(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value,
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn g(name: &'static str, help: &'static str) -> Family {
    Family { name, kind: Kind::Gauge, help }
}

const fn c(name: &'static str, help: &'static str) -> Family {
    Family { name, kind: Kind::Counter, help }
}

/// Every family the collector may produce. A sample of another name is never rendered (the
/// collector and this list are kept together by a test).
pub const FAMILIES: &[Family] = &[
    g("pg_up", "Whether the last collection reached the instance (1) or not (0)."),
    g("pg_static", "Server version, as labels (value 1)."),
    g("pg_postmaster_start_time_seconds", "Time the server started, seconds since the epoch."),
    g("pg_settings_max_connections", "max_connections."),
    g("pg_stat_database_numbackends", "Backends connected to the database."),
    c("pg_stat_database_xact_commit", "Transactions committed."),
    c("pg_stat_database_xact_rollback", "Transactions rolled back."),
    c("pg_stat_database_blks_read", "Disk blocks read."),
    c("pg_stat_database_blks_hit", "Disk blocks found in the buffer cache."),
    c("pg_stat_database_deadlocks", "Deadlocks detected."),
    c("pg_stat_database_temp_bytes", "Bytes written to temporary files."),
    c("pg_stat_database_temp_files", "Temporary files created."),
    c("pg_stat_database_conflicts", "Queries cancelled by recovery conflicts."),
    g("pg_database_size_bytes", "Disk space used by the database."),
    g("pg_stat_activity_count", "Sessions by database and state."),
    g("pg_stat_activity_max_tx_duration", "Longest open transaction by database and state, seconds."),
    g(
        "pg_database_wraparound_age_datfrozenxid_seconds",
        "Age of the database's oldest unfrozen transaction ID (in transactions).",
    ),
    g("pg_database_wraparound_age_datminmxid_seconds", "Age of the database's oldest multixact ID (in multixacts)."),
    c("pg_stat_bgwriter_checkpoints_timed_total", "Scheduled checkpoints."),
    c("pg_stat_bgwriter_checkpoints_req_total", "Requested checkpoints."),
    g("pg_locks_count", "Locks held or awaited, by database and mode."),
    c("pg_stat_archiver_archived_count", "WAL files archived."),
    c("pg_stat_archiver_failed_count", "Failed attempts to archive a WAL file."),
    g("pg_stat_archiver_last_archive_age", "Seconds since the last WAL file was archived."),
    g("dbaas_pitr_archive_timeout_seconds", "The instance's archive_timeout."),
    g(
        "dbaas_pitr_recovery_point_age_seconds",
        "How old the newest restorable time is: what a restore now would lose at most.",
    ),
    g("dbaas_pitr_drill_passed", "Whether the instance's latest point-in-time drill passed (1) or failed (0)."),
    g("dbaas_pitr_drill_restore_seconds", "How long the latest point-in-time drill took to restore and recover."),
    g("dbaas_pitr_drill_timestamp_seconds", "When the latest point-in-time drill finished."),
    g("pg_replication_lag_seconds", "Replay lag of a standby, seconds (0 on a primary)."),
    g("pg_replication_slots_active", "Whether a replication slot is in use."),
    g("pg_replication_slots_pg_wal_lsn_diff", "WAL bytes a replication slot holds back."),
    g("pg_stat_user_tables_n_live_tup", "Live rows (top tables by dead rows)."),
    g("pg_stat_user_tables_n_dead_tup", "Dead rows (top tables by dead rows)."),
    g("pg_stat_user_tables_last_autovacuum", "Last autovacuum, seconds since the epoch (0: never)."),
    g("pg_stat_user_tables_last_autoanalyze", "Last autoanalyze, seconds since the epoch (0: never)."),
    g(
        "dbaas_database_max_dead_tuple_ratio",
        "Highest dead/(live+dead) row ratio over the database's tables of 1000 rows or more.",
    ),
    g(
        "dbaas_database_oldest_vacuum_age_seconds",
        "Longest time since any of the database's tables was vacuumed (by hand or autovacuum).",
    ),
    g(
        "dbaas_database_oldest_analyze_age_seconds",
        "Longest time since any of the database's tables was analyzed (by hand or autoanalyze).",
    ),
    g("dbaas_database_tables", "Tables in the database."),
    g("dbaas_database_transactions_per_second", "Commits and rollbacks per second between the last two collections."),
    g("dbaas_table_health_collected_timestamp_seconds", "When the database's table health was last read."),
    g("dbaas_backup_last_success_timestamp_seconds", "When the database's latest good backup finished."),
    g("dbaas_backup_last_verified_timestamp_seconds", "When a restore drill of the database's backups last passed."),
    g("dbaas_backup_verify_failed", "Whether the database's latest restore drill failed (1) or passed (0)."),
    g(
        "dbaas_backup_max_age_seconds",
        "The oldest the latest good backup may be: twice its backup schedule's interval.",
    ),
    g("dbaas_operations_queued", "Operations waiting for a worker, by kind."),
    g("dbaas_operations_running", "Operations running, by kind."),
    g("dbaas_operations_oldest_queued_age_seconds", "How long the oldest queued operation has waited (0: none)."),
    g("dbaas_operations_past_lease", "Running operations whose worker's lease has expired (being taken over)."),
    g("dbaas_workers_busy", "This replica's workers running an attempt now."),
    g("dbaas_leases_active", "Temporary credentials (leases) alive."),
    g("dbaas_leases_expired_unrevoked", "Leases past their expiry whose role is not revoked yet."),
    g("dbaas_workers", "Operation workers configured in this replica."),
    g("dbaas_instance_health", "Health of each instance as the service last saw it (1 ok, 0 not)."),
    g(
        "dbaas_instance_certificate_expiry_timestamp_seconds",
        "When the server certificate of a managed instance expires (Unix time; renewed before).",
    ),
    g("dbaas_drift_pass_timestamp_seconds", "When the drift reconciler last compared an instance (Unix time)."),
    g("dbaas_drift_pass_duration_seconds", "How long the reconciler's last pass over an instance took."),
    g("dbaas_drift_pass_databases", "Databases the reconciler's last pass over an instance compared."),
    g("dbaas_drift_pass_ok", "Whether the reconciler's last pass over an instance succeeded (1) or not (0)."),
    g("dbaas_host_up", "Whether the last reading of a host's data disk succeeded."),
    g("dbaas_host_data_disk_size_bytes", "Size of the file system holding a host's data root."),
    g("dbaas_host_data_disk_available_bytes", "Bytes available on the file system holding a host's data root."),
    // The host's routing proxy (pgbouncer), under pgbouncer_exporter's names.
    g("pgbouncer_up", "Whether the routing proxy's admin console answered the last reading."),
    g(
        "pgbouncer_pools_client_active_connections",
        "Client connections linked to a server connection, per database and user.",
    ),
    g(
        "pgbouncer_pools_client_waiting_connections",
        "Client connections waiting for a server connection, per database and user.",
    ),
    g("pgbouncer_pools_server_active_connections", "Server connections linked to a client, per database and user."),
    g(
        "pgbouncer_pools_server_idle_connections",
        "Server connections idle and ready for a client, per database and user.",
    ),
    g(
        "pgbouncer_pools_server_used_connections",
        "Server connections idle longer than the check delay, per database and user.",
    ),
    g("pgbouncer_pools_server_login_connections", "Server connections logging in, per database and user."),
    g(
        "pgbouncer_pools_client_maxwait_seconds",
        "How long the oldest waiting client has waited, per database and user.",
    ),
    c("pgbouncer_stats_queries_pooled_total", "Queries pooled by the proxy, per database."),
    c("pgbouncer_stats_sql_transactions_pooled_total", "Transactions pooled by the proxy, per database."),
    c("pgbouncer_stats_received_bytes_total", "Bytes the proxy received from clients, per database."),
    c("pgbouncer_stats_sent_bytes_total", "Bytes the proxy sent to clients, per database."),
    c("pgbouncer_stats_queries_duration_seconds_total", "Time spent by the proxy's queries on servers, per database."),
    c("pgbouncer_stats_client_wait_seconds_total", "Time clients waited for a server connection, per database."),
];

pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}

/// Label values escaped as the text format wants (`\`, `"` and newlines).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Renders samples, grouped by family in the order of [`FAMILIES`], each with `# HELP` and
/// `# TYPE` once. Samples of unknown families are dropped.
pub fn render(samples: &[Sample]) -> String {
    let mut by: BTreeMap<usize, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        if let Some(i) = FAMILIES.iter().position(|f| f.name == s.name) {
            by.entry(i).or_default().push(s);
        }
    }
    let mut out = String::new();
    for (i, list) in by {
        let f = &FAMILIES[i];
        let kind = match f.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for s in list {
            out.push_str(f.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (j, (k, v)) in s.labels.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(s.value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_once_with_escaped_labels() {
        let s = vec![
            Sample::new("pg_stat_database_numbackends", &[("datname", "a\"b\\c\nd")], 3.0),
            Sample::new("pg_up", &[], 1.0),
            Sample::new("pg_stat_database_numbackends", &[("datname", "x")], 0.5),
            Sample::new("not_a_family", &[], 1.0),
        ];
        let text = render(&s);
        assert_eq!(
            text,
            "# HELP pg_up Whether the last collection reached the instance (1) or not (0).\n# TYPE pg_up gauge\npg_up 1\n\
             # HELP pg_stat_database_numbackends Backends connected to the database.\n\
             # TYPE pg_stat_database_numbackends gauge\n\
             pg_stat_database_numbackends{datname=\"a\\\"b\\\\c\\nd\"} 3\n\
             pg_stat_database_numbackends{datname=\"x\"} 0.5\n"
        );
    }

    #[test]
    fn family_names_are_unique_and_valid() {
        for (i, f) in FAMILIES.iter().enumerate() {
            assert!(f.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{}", f.name);
            assert!(FAMILIES[i + 1..].iter().all(|o| o.name != f.name), "{} twice", f.name);
        }
    }
}
