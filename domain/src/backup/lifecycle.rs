//! The backup lifecycle loop, run by every replica (rows are claimed with SKIP LOCKED, so
//! replicas share the work and never do it twice):
//! - a database that became ready gets its environment's policy schedules once (`backup`,
//!   and `verify` where the policy has one), marked `origin = policy`; the tenant may change
//!   or disable them afterwards;
//! - expired backups are purged: the stored object (the exact version written), then the
//!   record. Never one under Object Lock retention, never a running one, and never the
//!   newest good backup of a database that still exists (a database whose schedule stopped
//!   keeps at least one);
//! - the previous database an in-place restore kept is dropped (by an operation) once its
//!   time is up.

use std::collections::HashMap;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::store::{Store, StoreError};
use crate::state::AppState;
use dbaas_engine::timing::{next_slot, parse_cron};
use dbaas_store::backups::{self as rows, BackupRow, BACKUP_COLUMNS, BACKUP_FROM};

pub fn spawn(state: AppState, shutdown: CancellationToken) {
    let interval = state.engine.scheduler_interval;
    dbaas_engine::periodic::every(state, shutdown, interval, "backup lifecycle", |s| async move {
        apply_policies(&s).await?;
        drop_retained_copies(&s).await?;
        let purged = purge(&s).await?;
        if purged > 0 {
            tracing::info!(backups = purged, "purged expired backups");
        }
        Ok(())
    });
}

#[derive(sqlx::FromRow)]
struct Pending {
    id: Uuid,
    backup_cron: Option<String>,
    verify_cron: Option<String>,
}

/// Creates the policy's schedules for ready databases that have not had them yet.
pub async fn apply_policies(state: &AppState) -> Result<usize, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let pending: Vec<Pending> = sqlx::query_as(
        "SELECT d.id, p.backup_cron, p.verify_cron FROM databases d JOIN instances i ON i.id = d.instance_id \
         JOIN backup_policies p ON p.environment = i.environment \
         WHERE d.status = 'ready' AND NOT d.backup_policy_applied \
         ORDER BY d.created_at FOR UPDATE OF d SKIP LOCKED LIMIT 100",
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = Utc::now();
    for d in &pending {
        for (kind, cron) in [("backup", &d.backup_cron), ("verify", &d.verify_cron)] {
            let Some(text) = cron else { continue };
            // Validated when the policy was written; one that no longer parses is reported.
            let Some(next) = parse_cron(text).ok().and_then(|c| next_slot(&c, now)) else {
                tracing::error!(database = %d.id, cron = %text, "policy cron cannot be decoded; schedule not created");
                continue;
            };
            sqlx::query(
                "INSERT INTO schedules (id, database_id, kind, cron, next_run_at, origin) \
                 SELECT $1, $2, $3, $4, $5, 'policy' \
                 WHERE NOT EXISTS (SELECT 1 FROM schedules WHERE database_id = $2 AND kind = $3)",
            )
            .bind(Uuid::new_v4())
            .bind(d.id)
            .bind(kind)
            .bind(text)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE databases SET backup_policy_applied = true WHERE id = $1")
            .bind(d.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(pending.len())
}

/// Purges expired backups; returns how many went. A store that cannot be reached now is
/// tried again on the next pass.
pub async fn purge(state: &AppState) -> Result<usize, sqlx::Error> {
    let mut stores: HashMap<Uuid, Option<Store>> = HashMap::new();
    let mut purged = 0;
    loop {
        let mut tx = state.db.begin().await?;
        let batch: Vec<BackupRow> = sqlx::query_as(&format!(
            "SELECT {BACKUP_COLUMNS} FROM {BACKUP_FROM} WHERE b.expires_at < now() AND b.status <> 'running' \
             AND (b.locked_until IS NULL OR b.locked_until < now()) \
             AND NOT (b.status = 'succeeded' \
                 AND EXISTS (SELECT 1 FROM databases d WHERE d.id = b.database_id AND d.status <> 'deleted') \
                 AND b.id = (SELECT n.id FROM backups n WHERE n.database_id = b.database_id \
                             AND n.status = 'succeeded' ORDER BY n.created_at DESC LIMIT 1)) \
             ORDER BY b.expires_at FOR UPDATE OF b SKIP LOCKED LIMIT 20"
        ))
        .fetch_all(&mut *tx)
        .await?;
        if batch.is_empty() {
            return Ok(purged);
        }
        let mut progressed = false;
        for b in &batch {
            if let std::collections::hash_map::Entry::Vacant(slot) = stores.entry(b.store_id) {
                let store = match rows::store(&mut *tx, b.store_id).await? {
                    Some(row) => Store::from_row(&row, &state.key)
                        .map_err(
                            |e| tracing::warn!(store = %row.name, error = %e, "backup store unusable; purge waits"),
                        )
                        .ok(),
                    None => None,
                };
                slot.insert(store);
            }
            let Some(Some(store)) = stores.get(&b.store_id) else { continue };
            match store.delete(&b.object_key, b.object_version.as_deref()).await {
                Ok(()) => {}
                Err(e @ (StoreError::Locked(_) | StoreError::Unreachable(_))) => {
                    tracing::warn!(backup = %b.id, error = %e, "expired backup not purged yet");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(backup = %b.id, error = %e, "expired backup not purged");
                    continue;
                }
            }
            sqlx::query("DELETE FROM backups WHERE id = $1").bind(b.id).execute(&mut *tx).await?;
            purged += 1;
            progressed = true;
        }
        tx.commit().await?;
        if !progressed {
            // Everything left in this batch waits for its store: try again next pass.
            return Ok(purged);
        }
    }
}

/// Enqueues the drop of previous databases kept by in-place restores whose time is up.
pub async fn drop_retained_copies(state: &AppState) -> Result<usize, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, tenant_id FROM databases WHERE retained_until < now() AND status <> 'deleted' \
         FOR UPDATE SKIP LOCKED LIMIT 50",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, tenant) in &due {
        let job = crate::catalog::jobs::RestoreDatabase { action: crate::catalog::jobs::RestoreAction::DropPrevious };
        crate::operation::enqueue(&mut tx, &job, "database", *id, Some(*tenant)).await?;
        sqlx::query("UPDATE databases SET retained_until = NULL WHERE id = $1").bind(id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(due.len())
}
