//! Base backups and drills on the environment's point-in-time policy (`pitr_policies`: UTC
//! crons for full and differential backups and for drills). Each replica runs this loop; an
//! instance's (kind, next time) row is claimed with SKIP LOCKED and moved to the cron's next
//! slot in the transaction that enqueues the operation, so a slot becomes one operation.
//! Operations on one instance run one at a time, in order.

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use dbaas_client::BaseBackupKind;
use dbaas_domain::operation as queue;
use dbaas_domain::state::AppState;
use dbaas_engine::timing::{next_slot, parse_cron};

pub fn spawn(state: AppState, shutdown: CancellationToken) {
    let interval = state.engine.scheduler_interval;
    dbaas_engine::periodic::every(state, shutdown, interval, "point-in-time schedule", |s| async move {
        tick(&s).await.map(|_| ())
    });
}

#[derive(sqlx::FromRow)]
struct Planned {
    id: Uuid,
    kind: String,
    cron: Option<String>,
}

/// One pass: makes missing schedule rows, then enqueues what is due. Returns how many
/// operations were enqueued.
pub async fn tick(state: &AppState) -> Result<usize, sqlx::Error> {
    let now = Utc::now();
    // Every archiving instance has a row per kind its policy times (a kind the policy drops
    // loses its row; a changed cron takes effect after the slot already planned).
    let planned: Vec<Planned> = sqlx::query_as(
        "SELECT i.id, k.kind, CASE k.kind WHEN 'full' THEN p.full_cron WHEN 'diff' THEN p.diff_cron ELSE p.drill_cron END AS cron \
         FROM instances i JOIN pitr_policies p ON p.environment = i.environment \
         CROSS JOIN (VALUES ('full'), ('diff'), ('drill')) AS k(kind) \
         WHERE i.kind = 'managed' AND i.archiving = 'on' AND i.status = 'ready' \
         AND NOT EXISTS (SELECT 1 FROM pitr_schedule s WHERE s.instance_id = i.id AND s.kind = k.kind)",
    )
    .fetch_all(&state.db)
    .await?;
    for p in planned {
        let Some(next) = p.cron.as_deref().and_then(|c| parse_cron(c).ok()).and_then(|c| next_slot(&c, now)) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO pitr_schedule (instance_id, kind, next_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(p.id)
        .bind(&p.kind)
        .bind(next)
        .execute(&state.db)
        .await?;
    }

    let mut tx = state.db.begin().await?;
    let due: Vec<Planned> = sqlx::query_as(
        "SELECT s.instance_id AS id, s.kind, CASE s.kind WHEN 'full' THEN p.full_cron WHEN 'diff' THEN p.diff_cron ELSE p.drill_cron END AS cron \
         FROM pitr_schedule s JOIN instances i ON i.id = s.instance_id JOIN pitr_policies p ON p.environment = i.environment \
         WHERE s.next_at <= now() AND i.archiving = 'on' AND i.status = 'ready' \
         ORDER BY s.next_at FOR UPDATE OF s SKIP LOCKED LIMIT 100",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut enqueued = 0;
    for d in due {
        let next = d.cron.as_deref().and_then(|c| parse_cron(c).ok()).and_then(|c| next_slot(&c, now));
        match next {
            Some(next) => {
                sqlx::query("UPDATE pitr_schedule SET next_at = $3 WHERE instance_id = $1 AND kind = $2")
                    .bind(d.id)
                    .bind(&d.kind)
                    .bind(next)
                    .execute(&mut *tx)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM pitr_schedule WHERE instance_id = $1 AND kind = $2")
                    .bind(d.id)
                    .bind(&d.kind)
                    .execute(&mut *tx)
                    .await?
            }
        };
        if d.cron.is_none() {
            continue;
        }
        let reason = Some("the environment's point-in-time policy".to_string());
        match d.kind.as_str() {
            "full" => {
                queue::enqueue(
                    &mut tx,
                    &super::jobs::BaseBackup { kind: BaseBackupKind::Full, reason },
                    "instance",
                    d.id,
                    None,
                )
                .await?
            }
            "diff" => {
                queue::enqueue(
                    &mut tx,
                    &super::jobs::BaseBackup { kind: BaseBackupKind::Diff, reason },
                    "instance",
                    d.id,
                    None,
                )
                .await?
            }
            _ => queue::enqueue(&mut tx, &super::drill::PitrDrill { reason }, "instance", d.id, None).await?,
        };
        enqueued += 1;
    }
    tx.commit().await?;
    Ok(enqueued)
}
