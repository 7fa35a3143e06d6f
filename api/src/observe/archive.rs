//! Point-in-time metrics of a managed instance that archives its WAL, gathered with its
//! collection: `pg_stat_archiver` under postgres_exporter's names, how old the newest
//! restorable time is (the recovery point objective as it stands), the effective
//! `archive_timeout`, and the newest drill's outcome.
//!
//! The restorable time here is read from the server's own view (the end of the last WAL file
//! it archived) against the service's (time, WAL position) samples, the same rule as the
//! recovery window's `latest` without reading the repository on the host every interval.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::exposition::Sample;
use crate::managed::pitr::window::{mark, segment_end};
use crate::state::AppState;
use crate::store::instances::InstanceRow;

pub async fn samples(state: &AppState, inst: &InstanceRow, c: &mut PgConnection) -> Result<Vec<Sample>, String> {
    let err = |e: sqlx::Error| e.to_string();
    let mut out = Vec::new();
    let (archived, failed, last_wal, last_at, timeout): (i64, i64, Option<String>, Option<DateTime<Utc>>, f64) =
        sqlx::query_as(
            "SELECT archived_count, failed_count, last_archived_wal, last_archived_time, \
             extract(epoch FROM pg_catalog.current_setting('archive_timeout')::interval)::float8 \
             FROM pg_catalog.pg_stat_archiver",
        )
        .fetch_one(&mut *c)
        .await
        .map_err(err)?;
    out.push(Sample::new("pg_stat_archiver_archived_count", &[], archived as f64));
    out.push(Sample::new("pg_stat_archiver_failed_count", &[], failed as f64));
    if let Some(at) = last_at {
        out.push(Sample::new(
            "pg_stat_archiver_last_archive_age",
            &[],
            (Utc::now() - at).num_milliseconds() as f64 / 1000.0,
        ));
    }
    out.push(Sample::new("dbaas_pitr_archive_timeout_seconds", &[], timeout));
    mark(c, &state.db, inst).await.map_err(|e| e.message)?;
    if let Some((timeline, end)) = last_wal.as_deref().and_then(segment_end) {
        let latest: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT max(at) FROM wal_marks WHERE instance_id = $1 AND timeline = $2 AND lsn <= $3::pg_lsn",
        )
        .bind(inst.id)
        .bind(timeline)
        .bind(&end)
        .fetch_one(&state.db)
        .await
        .map_err(err)?;
        if let Some(latest) = latest {
            let age = (Utc::now() - latest).num_milliseconds() as f64 / 1000.0;
            out.push(Sample::new("dbaas_pitr_recovery_point_age_seconds", &[], age));
        }
    }
    if let Some(d) = crate::managed::pitr::drill::last(&state.db, inst.id).await.map_err(err)? {
        out.push(Sample::new("dbaas_pitr_drill_passed", &[], if d.passed { 1.0 } else { 0.0 }));
        if let Some(ms) = d.restore_ms {
            out.push(Sample::new("dbaas_pitr_drill_restore_seconds", &[], ms as f64 / 1000.0));
        }
        out.push(Sample::new("dbaas_pitr_drill_timestamp_seconds", &[], d.finished_at.timestamp() as f64));
    }
    Ok(out)
}
