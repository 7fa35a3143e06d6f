//! Collecting metrics from instances, in the service (why not postgres_exporter processes:
//! docs/architecture.md, "Metrics").
//!
//! Every replica runs the loop; an instance is collected by one replica per interval: the
//! replica takes a session advisory lock on the instance in the state database and checks
//! the last collection is still older than the interval before connecting. A collection is
//! one connection to the instance's maintenance database (catalog queries covering every
//! database at once), with a connect timeout and a statement timeout of a few seconds, plus
//! table health for at most [`TABLE_HEALTH_PER_PASS`] databases (the least recently read),
//! each a connection as that database's admin role (nothing the tenant defined runs with
//! more). Results go to the state database; scrapes render from there and never wait on an
//! instance.

use crate::catalog::conn::InstanceTarget;
use std::time::Duration;

use chrono::Utc;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::exposition::Sample;
use crate::catalog::conn::MAINTENANCE_DB;
use crate::catalog::record;
use crate::state::AppState;
use crate::store::instances::InstanceRow;
use dbaas_engine::periodic::{each_locked, fresh};

/// Databases whose table health one collection of an instance reads.
pub const TABLE_HEALTH_PER_PASS: i64 = 2;
/// Tables per database exported one by one (the most dead rows first).
pub const TOP_TABLES: usize = 5;
/// Tables below this many rows do not count for the dead-row ratio (noise).
const RATIO_MIN_ROWS: i64 = 1000;
const COLLECT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn spawn(state: AppState, shutdown: CancellationToken) {
    // A third of the interval: an instance falls due at most that late.
    let tick = state.engine.metrics_interval / 3;
    dbaas_engine::periodic::every(state, shutdown, tick, "metrics collection", |s| async move {
        pass(&s).await.map(|_| ())
    });
}

/// One pass: collects every instance whose last collection is older than the interval and
/// that no other replica is collecting. Returns how many were collected here.
pub async fn pass(state: &AppState) -> Result<usize, sqlx::Error> {
    let interval_ms = state.engine.metrics_interval.as_millis() as i64;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT i.id FROM instances i LEFT JOIN instance_metrics m ON m.instance_id = i.id \
         WHERE i.status NOT IN ('deleting', 'deleted') \
           AND (m.collected_at IS NULL OR m.collected_at < now() - make_interval(secs => $1::float8 / 1000)) \
         ORDER BY m.collected_at NULLS FIRST LIMIT 50",
    )
    .bind(interval_ms)
    .fetch_all(&state.db)
    .await?;
    let mut done = each_locked(state, "dbaas:metrics", due, |id| collect_locked(state, id, interval_ms)).await?;
    done += super::hosts::pass(state).await?;
    Ok(done)
}

/// Under the instance's lock: collects unless another replica just did.
async fn collect_locked(state: &AppState, id: Uuid, interval_ms: i64) -> Result<bool, sqlx::Error> {
    if fresh(state, "instance_metrics", "instance_id", id, interval_ms).await? {
        return Ok(false);
    }
    let Some(inst) = record::load_instance(&state.db, id).await? else { return Ok(false) };
    let previous: Option<(chrono::DateTime<Utc>, sqlx::types::Json<Vec<Sample>>)> =
        sqlx::query_as("SELECT collected_at, samples FROM instance_metrics WHERE instance_id = $1 AND up")
            .bind(id)
            .fetch_optional(&state.db)
            .await?;
    let (up, error, mut samples) = match tokio::time::timeout(COLLECT_TIMEOUT, instance_samples(state, &inst)).await {
        Ok(Ok(s)) => (true, None, s),
        Ok(Err(e)) => (false, Some(e), vec![Sample::new("pg_up", &[], 0.0)]),
        Err(_) => (false, Some(format!("no answer within {COLLECT_TIMEOUT:?}")), vec![Sample::new("pg_up", &[], 0.0)]),
    };
    if let (true, Some((at, old))) = (up, &previous) {
        let seconds = (Utc::now() - *at).num_milliseconds() as f64 / 1000.0;
        samples.extend(rates(&old.0, &samples, seconds));
    }
    sqlx::query(
        "INSERT INTO instance_metrics (instance_id, collected_at, up, error, samples) VALUES ($1, now(), $2, $3, $4) \
         ON CONFLICT (instance_id) DO UPDATE SET collected_at = now(), up = $2, error = $3, samples = $4",
    )
    .bind(id)
    .bind(up)
    .bind(&error)
    .bind(sqlx::types::Json(&samples))
    .execute(&state.db)
    .await?;
    if up {
        table_health(state, &inst).await?;
    } else if let Some(e) = error {
        tracing::debug!(instance = %inst.name, error = %e, "instance metrics not collected");
    }
    Ok(true)
}

/// The instance-wide and per-database samples, from one connection to the maintenance
/// database.
async fn instance_samples(state: &AppState, inst: &InstanceRow) -> Result<Vec<Sample>, String> {
    let target = inst.target(&state.key).map_err(|e| e.to_string())?;
    let mut c = target.connect(MAINTENANCE_DB).await.map_err(|e| e.message)?;
    let mut r = queries(&mut c).await.map_err(|e| e.to_string());
    if let (Ok(samples), dbaas_client::ArchivingState::On) = (&mut r, inst.archiving) {
        samples.extend(super::archive::samples(state, inst, &mut c).await?);
    }
    c.close().await.ok();
    r
}

/// Short statements, read only: a collection never waits long or writes.
async fn read_only_session(c: &mut PgConnection) -> Result<(), sqlx::Error> {
    // Not `raw_sql`: its executor bounds make the collector's future not provably `Send`.
    sqlx::query("SET statement_timeout = '5s'").execute(&mut *c).await?;
    sqlx::query("SET default_transaction_read_only = on").execute(&mut *c).await?;
    Ok(())
}

async fn queries(c: &mut PgConnection) -> Result<Vec<Sample>, sqlx::Error> {
    read_only_session(c).await?;
    let mut out = vec![Sample::new("pg_up", &[], 1.0)];
    let (short, long, started, max_conn, recovery): (String, String, f64, f64, bool) = sqlx::query_as(
        "SELECT current_setting('server_version'), version(), extract(epoch FROM pg_postmaster_start_time())::float8, \
         current_setting('max_connections')::float8, pg_is_in_recovery()",
    )
    .fetch_one(&mut *c)
    .await?;
    let short = short.split_whitespace().next().unwrap_or_default().to_string();
    out.push(Sample::new("pg_static", &[("short_version", &short), ("version", &long)], 1.0));
    out.push(Sample::new("pg_postmaster_start_time_seconds", &[], started));
    out.push(Sample::new("pg_settings_max_connections", &[], max_conn));

    type DbRow = (String, f64, f64, f64, f64, f64, f64, f64, f64, f64, Option<f64>);
    let dbs: Vec<DbRow> = sqlx::query_as(
        "SELECT s.datname::text, s.numbackends::float8, s.xact_commit::float8, s.xact_rollback::float8, \
         s.blks_read::float8, s.blks_hit::float8, s.deadlocks::float8, s.temp_bytes::float8, s.temp_files::float8, \
         s.conflicts::float8, \
         CASE WHEN has_database_privilege(d.oid, 'CONNECT') OR pg_has_role('pg_read_all_stats', 'MEMBER') \
              THEN pg_database_size(d.oid)::float8 END \
         FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid \
         WHERE d.datallowconn AND NOT d.datistemplate ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await?;
    for (db, backends, commit, rollback, read, hit, deadlocks, temp_bytes, temp_files, conflicts, size) in &dbs {
        let l = [("datname", db.as_str())];
        out.push(Sample::new("pg_stat_database_numbackends", &l, *backends));
        out.push(Sample::new("pg_stat_database_xact_commit", &l, *commit));
        out.push(Sample::new("pg_stat_database_xact_rollback", &l, *rollback));
        out.push(Sample::new("pg_stat_database_blks_read", &l, *read));
        out.push(Sample::new("pg_stat_database_blks_hit", &l, *hit));
        out.push(Sample::new("pg_stat_database_deadlocks", &l, *deadlocks));
        out.push(Sample::new("pg_stat_database_temp_bytes", &l, *temp_bytes));
        out.push(Sample::new("pg_stat_database_temp_files", &l, *temp_files));
        out.push(Sample::new("pg_stat_database_conflicts", &l, *conflicts));
        if let Some(size) = size {
            out.push(Sample::new("pg_database_size_bytes", &l, *size));
        }
    }

    let activity: Vec<(String, String, f64, f64)> = sqlx::query_as(
        "SELECT datname::text, coalesce(state, 'unknown'), count(*)::float8, \
         coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8 \
         FROM pg_stat_activity WHERE datname IS NOT NULL AND backend_type = 'client backend' GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&mut *c)
    .await?;
    for (db, st, n, longest) in &activity {
        let l = [("datname", db.as_str()), ("state", st.as_str())];
        out.push(Sample::new("pg_stat_activity_count", &l, *n));
        out.push(Sample::new("pg_stat_activity_max_tx_duration", &l, *longest));
    }

    let ages: Vec<(String, f64, f64)> = sqlx::query_as(
        "SELECT datname::text, age(datfrozenxid)::float8, mxid_age(datminmxid)::float8 FROM pg_database \
         WHERE datallowconn ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await?;
    for (db, xid, mxid) in &ages {
        let l = [("datname", db.as_str())];
        out.push(Sample::new("pg_database_wraparound_age_datfrozenxid_seconds", &l, *xid));
        out.push(Sample::new("pg_database_wraparound_age_datminmxid_seconds", &l, *mxid));
    }

    let (timed, req): (f64, f64) =
        sqlx::query_as("SELECT checkpoints_timed::float8, checkpoints_req::float8 FROM pg_stat_bgwriter")
            .fetch_one(&mut *c)
            .await?;
    out.push(Sample::new("pg_stat_bgwriter_checkpoints_timed_total", &[], timed));
    out.push(Sample::new("pg_stat_bgwriter_checkpoints_req_total", &[], req));

    let locks: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT d.datname::text, l.mode, count(*)::float8 FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&mut *c)
    .await?;
    for (db, mode, n) in &locks {
        out.push(Sample::new("pg_locks_count", &[("datname", db.as_str()), ("mode", mode.as_str())], *n));
    }

    if recovery {
        let lag: Option<f64> =
            sqlx::query_scalar("SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8")
                .fetch_one(&mut *c)
                .await?;
        out.push(Sample::new("pg_replication_lag_seconds", &[], lag.unwrap_or(0.0).max(0.0)));
    } else {
        out.push(Sample::new("pg_replication_lag_seconds", &[], 0.0));
        let slots: Vec<(String, bool, Option<f64>)> = sqlx::query_as(
            "SELECT slot_name::text, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 \
             FROM pg_replication_slots ORDER BY 1",
        )
        .fetch_all(&mut *c)
        .await?;
        for (slot, active, held) in &slots {
            let l = [("slot_name", slot.as_str())];
            out.push(Sample::new("pg_replication_slots_active", &l, if *active { 1.0 } else { 0.0 }));
            out.push(Sample::new("pg_replication_slots_pg_wal_lsn_diff", &l, held.unwrap_or(0.0)));
        }
    }
    Ok(out)
}

/// Transactions per second of each database between two collections (a counter that went
/// down, after a stats reset or a restart, gives none).
fn rates(old: &[Sample], new: &[Sample], seconds: f64) -> Vec<Sample> {
    if seconds <= 0.0 {
        return Vec::new();
    }
    let xacts = |list: &[Sample], db: &str| -> Option<f64> {
        let v = |n: &str| list.iter().find(|s| s.name == n && s.label("datname") == Some(db)).map(|s| s.value);
        Some(v("pg_stat_database_xact_commit")? + v("pg_stat_database_xact_rollback")?)
    };
    new.iter()
        .filter(|s| s.name == "pg_stat_database_xact_commit")
        .filter_map(|s| {
            let db = s.label("datname")?;
            let delta = xacts(new, db)? - xacts(old, db)?;
            (delta >= 0.0)
                .then(|| Sample::new("dbaas_database_transactions_per_second", &[("datname", db)], delta / seconds))
        })
        .collect()
}

/// Reads table health of the instance's least recently read databases.
async fn table_health(state: &AppState, inst: &InstanceRow) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT d.id FROM databases d LEFT JOIN database_metrics m ON m.database_id = d.id \
         WHERE d.instance_id = $1 AND d.status = 'ready' ORDER BY m.collected_at NULLS FIRST LIMIT $2",
    )
    .bind(inst.id)
    .bind(TABLE_HEALTH_PER_PASS)
    .fetch_all(&state.db)
    .await?;
    let Ok(target) = inst.target(&state.key) else { return Ok(()) };
    for id in ids {
        let Some(db) = record::load(&state.db, id).await? else { continue };
        let creds = record::credentials(&state.db, id).await?;
        let samples = match tokio::time::timeout(COLLECT_TIMEOUT, database_samples(state, &target, &db, &creds)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(database = %id, error = %e, "table health not read");
                continue;
            }
            Err(_) => continue,
        };
        sqlx::query(
            "INSERT INTO database_metrics (database_id, collected_at, samples) VALUES ($1, now(), $2) \
             ON CONFLICT (database_id) DO UPDATE SET collected_at = now(), samples = $2",
        )
        .bind(id)
        .bind(sqlx::types::Json(&samples))
        .execute(&state.db)
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct TableStat {
    schemaname: String,
    relname: String,
    live: i64,
    dead: i64,
    autovacuum: Option<f64>,
    autoanalyze: Option<f64>,
    vacuumed: Option<f64>,
    analyzed: Option<f64>,
}

async fn database_samples(
    state: &AppState,
    target: &crate::catalog::conn::Target,
    db: &crate::store::databases::DatabaseRow,
    creds: &[crate::store::databases::CredentialRow],
) -> Result<Vec<Sample>, String> {
    let mut c = match crate::catalog::tenant_session::connect(target, &state.key, db, creds).await {
        Ok(c) => c,
        Err(e) => return Err(e.message),
    };
    let rows = match health_rows(&mut c).await {
        Ok(r) => r,
        Err(e) => return Err(e.to_string()),
    };
    c.close().await.ok();
    Ok(health_samples(&db.physical_name, &rows, Utc::now().timestamp() as f64))
}

async fn health_rows(c: &mut PgConnection) -> Result<Vec<TableStat>, sqlx::Error> {
    read_only_session(c).await?;
    sqlx::query_as(
        "SELECT schemaname::text AS schemaname, relname::text AS relname, n_live_tup AS live, n_dead_tup AS dead, \
         extract(epoch FROM last_autovacuum)::float8 AS autovacuum, extract(epoch FROM last_autoanalyze)::float8 AS autoanalyze, \
         extract(epoch FROM greatest(last_vacuum, last_autovacuum))::float8 AS vacuumed, \
         extract(epoch FROM greatest(last_analyze, last_autoanalyze))::float8 AS analyzed \
         FROM pg_catalog.pg_stat_user_tables ORDER BY n_dead_tup DESC, schemaname, relname",
    )
    .fetch_all(&mut *c)
    .await
}

/// The per-database aggregates and the top tables, from `pg_stat_user_tables` rows sorted by
/// dead rows (pure: unit-tested).
fn health_samples(datname: &str, rows: &[TableStat], now: f64) -> Vec<Sample> {
    let l = [("datname", datname)];
    let mut out = vec![
        Sample::new("dbaas_database_tables", &l, rows.len() as f64),
        Sample::new("dbaas_table_health_collected_timestamp_seconds", &l, now),
    ];
    let ratio = rows
        .iter()
        .filter(|r| r.live + r.dead >= RATIO_MIN_ROWS)
        .map(|r| r.dead as f64 / (r.live + r.dead) as f64)
        .fold(0.0, f64::max);
    out.push(Sample::new("dbaas_database_max_dead_tuple_ratio", &l, ratio));
    // Tables never vacuumed or analyzed count from now (freshly created ones are common).
    let oldest = |f: fn(&TableStat) -> Option<f64>| rows.iter().filter_map(f).map(|t| now - t).fold(0.0, f64::max);
    out.push(Sample::new("dbaas_database_oldest_vacuum_age_seconds", &l, oldest(|r| r.vacuumed)));
    out.push(Sample::new("dbaas_database_oldest_analyze_age_seconds", &l, oldest(|r| r.analyzed)));
    for r in rows.iter().take(TOP_TABLES) {
        let tl = [("datname", datname), ("schemaname", r.schemaname.as_str()), ("relname", r.relname.as_str())];
        out.push(Sample::new("pg_stat_user_tables_n_live_tup", &tl, r.live as f64));
        out.push(Sample::new("pg_stat_user_tables_n_dead_tup", &tl, r.dead as f64));
        out.push(Sample::new("pg_stat_user_tables_last_autovacuum", &tl, r.autovacuum.unwrap_or(0.0)));
        out.push(Sample::new("pg_stat_user_tables_last_autoanalyze", &tl, r.autoanalyze.unwrap_or(0.0)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, live: i64, dead: i64, vacuumed: Option<f64>) -> TableStat {
        TableStat {
            schemaname: "public".into(),
            relname: name.into(),
            live,
            dead,
            autovacuum: vacuumed,
            autoanalyze: None,
            vacuumed,
            analyzed: None,
        }
    }

    #[test]
    fn rates_come_from_two_collections() {
        let at = |c: f64, r: f64| {
            vec![
                Sample::new("pg_stat_database_xact_commit", &[("datname", "a")], c),
                Sample::new("pg_stat_database_xact_rollback", &[("datname", "a")], r),
            ]
        };
        let r = rates(&at(100.0, 10.0), &at(190.0, 20.0), 10.0);
        assert_eq!(r, vec![Sample::new("dbaas_database_transactions_per_second", &[("datname", "a")], 10.0)]);
        assert!(rates(&at(100.0, 10.0), &at(5.0, 0.0), 10.0).is_empty(), "a reset counter gives no rate");
    }

    #[test]
    fn health_is_aggregated_and_bounded() {
        let rows: Vec<TableStat> = (0..8).map(|i| t(&format!("t{i}"), 10_000, 1000 - i * 100, Some(1000.0))).collect();
        let mut rows = rows;
        rows.insert(0, t("tiny", 1, 500, None));
        let s = health_samples("team-a_orders", &rows, 5000.0);
        let get = |n: &str| s.iter().find(|x| x.name == n).unwrap().value;
        // The tiny table is below the row floor; t0 has 1000 dead of 11000.
        assert!((get("dbaas_database_max_dead_tuple_ratio") - 1000.0 / 11000.0).abs() < 1e-9);
        assert_eq!(get("dbaas_database_oldest_vacuum_age_seconds"), 4000.0);
        assert_eq!(get("dbaas_database_tables"), 9.0);
        let top = s.iter().filter(|x| x.name == "pg_stat_user_tables_n_dead_tup").count();
        assert_eq!(top, TOP_TABLES, "per-table series are bounded");
        for x in &s {
            assert!(crate::observe::exposition::family(&x.name).is_some(), "{} has no family", x.name);
        }
    }
}
