//! Fires due schedules (maintenance, backups, restore drills). Each replica runs this loop; a slot becomes at most one
//! operation because the run is recorded under the (schedule, slot) primary key in the same
//! transaction that enqueues it, and schedule rows are claimed with SKIP LOCKED.

use chrono::{Timelike, Utc};
use dbaas_client::{BackupReason, CreateMaintenance, MaintenanceOptions, OperationKind, ScheduleKind};
use dbaas_engine::Payload;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backup::policy;
use crate::catalog::jobs::{Maintenance, ScheduledSlot, VerifyBackup};
use crate::error::ApiError;
use crate::operation::{self as queue, OperationRow};
use crate::state::AppState;
use dbaas_engine::timing::{in_window, next_slot, parse_cron};

pub fn spawn(state: AppState, shutdown: CancellationToken) {
    let interval = state.engine.scheduler_interval;
    dbaas_engine::periodic::every(state, shutdown, interval, "scheduler", |s| async move { tick(&s).await });
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
    environment: String,
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
        "SELECT s.id, s.database_id, d.tenant_id, s.kind, i.environment, s.cron, s.tables, s.options, s.next_run_at, i.maintenance_window \
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
        if s.maintenance_window.as_ref().is_some_and(|w| !in_window(&w.0.start, &w.0.end, minute)) {
            continue;
        }
        // Both were validated when the schedule was written; a row that no longer parses is
        // reported, not run with guesses.
        let decoded =
            (parse_cron(&s.cron), s.kind.parse::<ScheduleKind>(), s.environment.parse::<dbaas_client::Environment>());
        let (Ok(cron), Ok(kind), Ok(env)) = decoded else {
            tracing::error!(schedule = %s.id, cron = %s.cron, kind = %s.kind, "schedule cannot be decoded; skipped");
            continue;
        };
        let slot = ScheduledSlot { schedule_id: s.id, slot: s.next_run_at };
        // A slot that cannot start (no store, no backup to drill yet) is logged and skipped:
        // the next slot tries again.
        let op = match fire(&mut tx, state, &s, kind, env, slot).await {
            Ok(Some(op)) => op,
            Ok(None) => {
                advance(&mut tx, &s, &cron, now).await?;
                continue;
            }
            Err(ApiError::Database(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(schedule = %s.id, kind = kind.as_str(), error = %e, "scheduled run not started");
                advance(&mut tx, &s, &cron, now).await?;
                continue;
            }
        };
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
        advance(&mut tx, &s, &cron, now).await?;
    }
    tx.commit().await?;
    Ok(fired)
}

async fn advance(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    s: &Due,
    cron: &croner::Cron,
    now: chrono::DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let next = next_slot(cron, now.max(s.next_run_at)).unwrap_or(now + chrono::Duration::days(3650));
    sqlx::query("UPDATE schedules SET next_run_at = $2 WHERE id = $1").bind(s.id).bind(next).execute(&mut **tx).await?;
    Ok(())
}

/// Enqueues the slot's operation: a maintenance run, a backup, or a drill of the latest good
/// backup (None when there is none yet).
async fn fire(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    state: &AppState,
    s: &Due,
    kind: ScheduleKind,
    env: dbaas_client::Environment,
    slot: ScheduledSlot,
) -> Result<Option<OperationRow>, ApiError> {
    let job: Box<dyn Payload<OperationKind> + Send + Sync> = match kind.maintenance() {
        Some(m) => Box::new(Maintenance {
            request: CreateMaintenance { kind: m, tables: s.tables.clone(), options: s.options.0.clone() },
            scheduled: Some(slot),
        }),
        None if kind == ScheduleKind::Backup => {
            let db =
                dbaas_store::databases::load(&mut **tx, s.database_id).await?.ok_or(ApiError::NotFound("database"))?;
            let store = policy::choose_store(tx, env, None, db.backup_store_id).await?;
            let (_, op) = policy::start(tx, &state.key, &db, env, &store, BackupReason::Scheduled).await?;
            return Ok(Some(op));
        }
        None => {
            let latest: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM backups WHERE database_id = $1 AND status = 'succeeded' ORDER BY created_at DESC LIMIT 1",
            )
            .bind(s.database_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(backup_id) = latest else { return Ok(None) };
            Box::new(VerifyBackup { backup_id })
        }
    };
    Ok(Some(queue::enqueue(tx, job.as_ref(), "database", s.database_id, Some(s.tenant_id)).await?))
}
