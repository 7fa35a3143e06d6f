//! Fires due maintenance schedules. Each replica runs this loop; a slot becomes at most one
//! operation because the run is recorded under the (schedule, slot) primary key in the same
//! transaction that enqueues it, and schedule rows are claimed with SKIP LOCKED.

use chrono::{Timelike, Utc};
use dbaas_client::{CreateMaintenance, MaintenanceOptions};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::queue;
use super::timing::{in_window, next_slot, parse_cron};
use crate::catalog::jobs::{Maintenance, ScheduledSlot};
use crate::state::AppState;

pub fn spawn(state: AppState, shutdown: CancellationToken) {
    let interval = state.engine.scheduler_interval;
    crate::ops::periodic::every(state, shutdown, interval, "scheduler", |s| async move { tick(&s).await });
}

/// SQL: the schedule's instance has no maintenance window, or now (UTC) is inside it.
/// Filtering here, not after the fetch: due schedules waiting for their window would
/// otherwise fill every batch and starve the others. Windows are validated `HH:MM` at write.
const IN_WINDOW: &str = "i.maintenance_window IS NULL OR (\
    SELECT CASE WHEN w.s <= w.e THEN w.m >= w.s AND w.m < w.e ELSE w.m >= w.s OR w.m < w.e END \
    FROM (SELECT split_part(i.maintenance_window->>'start', ':', 1)::int * 60 \
                   + split_part(i.maintenance_window->>'start', ':', 2)::int AS s, \
                 split_part(i.maintenance_window->>'end', ':', 1)::int * 60 \
                   + split_part(i.maintenance_window->>'end', ':', 2)::int AS e, \
                 (extract(hour FROM now() AT TIME ZONE 'UTC') * 60 \
                   + extract(minute FROM now() AT TIME ZONE 'UTC'))::int AS m) w)";

#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    database_id: Uuid,
    tenant_id: Uuid,
    kind: String,
    cron: String,
    tables: Vec<String>,
    options: sqlx::types::Json<MaintenanceOptions>,
    next_run_at: chrono::DateTime<Utc>,
    maintenance_window: Option<sqlx::types::Json<dbaas_client::MaintenanceWindow>>,
}

/// One pass: returns how many operations were enqueued.
pub async fn tick(state: &AppState) -> Result<usize, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let due: Vec<Due> = sqlx::query_as(&format!(
        "SELECT s.id, s.database_id, d.tenant_id, s.kind, s.cron, s.tables, s.options, s.next_run_at, i.maintenance_window \
         FROM schedules s JOIN databases d ON d.id = s.database_id JOIN instances i ON i.id = d.instance_id \
         WHERE s.enabled AND s.next_run_at <= now() AND d.status = 'ready' AND ({IN_WINDOW}) \
         ORDER BY s.next_run_at FOR UPDATE OF s SKIP LOCKED LIMIT 100"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let now = Utc::now();
    let minute = now.hour() * 60 + now.minute();
    let mut fired = 0;
    for s in due {
        // The query left out schedules outside their window; this guards the minute edge.
        if s.maintenance_window.as_ref().is_some_and(|w| !in_window(&w.0, minute)) {
            continue;
        }
        // Both were validated when the schedule was written; a row that no longer parses is
        // reported, not run with guesses.
        let (Ok(cron), Ok(kind)) = (parse_cron(&s.cron), s.kind.parse::<dbaas_client::MaintenanceKind>()) else {
            tracing::error!(schedule = %s.id, cron = %s.cron, kind = %s.kind, "schedule cannot be decoded; skipped");
            continue;
        };
        let job = Maintenance {
            request: CreateMaintenance { kind, tables: s.tables.clone(), options: s.options.0.clone() },
            scheduled: Some(ScheduledSlot { schedule_id: s.id, slot: s.next_run_at }),
        };
        let op = queue::enqueue(&mut tx, &job.into(), "database", s.database_id, Some(s.tenant_id)).await?;
        let recorded = sqlx::query(
            "INSERT INTO schedule_runs (schedule_id, slot, operation_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(s.id)
        .bind(s.next_run_at)
        .bind(op.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if recorded == 0 {
            // Another replica already fired this slot: undo our enqueue.
            sqlx::query("DELETE FROM operations WHERE id = $1").bind(op.id).execute(&mut *tx).await?;
        } else {
            fired += 1;
        }
        let next = next_slot(&cron, now.max(s.next_run_at)).unwrap_or(now + chrono::Duration::days(3650));
        sqlx::query("UPDATE schedules SET next_run_at = $2 WHERE id = $1")
            .bind(s.id)
            .bind(next)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(fired)
}
