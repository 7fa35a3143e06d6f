//! Runs one operation by kind and applies its outcome to the resource it targets.

use dbaas_client::{OperationKind, OperationStatus};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::queue::{self, OperationRow};
use super::OpError;
use crate::state::AppState;
use crate::target;

pub struct OpContext {
    pub state: AppState,
    pub op: OperationRow,
}

impl OpContext {
    /// Adds a line to the operation's log (failures to log never fail the operation).
    pub async fn log(&self, level: &str, message: &str) {
        if let Err(e) = queue::log(&self.state.db, self.op.id, level, message).await {
            tracing::warn!(error = %e, operation = %self.op.id, "writing an operation log line failed");
        }
    }

    /// Logs the start of a step (and, in tests, pauses so a crash can land mid-operation).
    pub async fn step(&self, message: &str) {
        self.log("info", message).await;
        if !self.state.engine.step_delay.is_zero() {
            tokio::time::sleep(self.state.engine.step_delay).await;
        }
    }

    pub fn param_uuid(&self, name: &str) -> Result<Uuid, OpError> {
        self.op
            .params
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| OpError::permanent("bad_params", format!("operation parameter {name} missing")))
    }

    pub fn param_strings(&self, name: &str) -> Vec<String> {
        self.op
            .params
            .get(name)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

pub async fn execute(ctx: &OpContext) -> Result<(), OpError> {
    #[cfg(feature = "test-hooks")]
    if std::env::var("DBAAS_TEST_PANIC_KIND").is_ok_and(|k| k == ctx.op.kind) {
        panic!("test hook: a panic in {}", ctx.op.kind);
    }
    match ctx.op.kind()? {
        OperationKind::ProvisionDatabase | OperationKind::UpdateDatabase => target::provision::run(ctx).await,
        OperationKind::DeleteDatabase => target::delete::run(ctx).await,
        OperationKind::RotateCredential => target::credentials::rotate(ctx).await,
        OperationKind::CreateLease => target::credentials::create_lease(ctx).await,
        OperationKind::RevokeLease => target::credentials::revoke_lease(ctx).await,
        OperationKind::Maintenance => target::maintenance::run(ctx).await,
        OperationKind::ProvisionInstance
        | OperationKind::UpdateInstance
        | OperationKind::StartInstance
        | OperationKind::StopInstance
        | OperationKind::RestartInstance
        | OperationKind::DeleteInstance => crate::managed::ops::run(ctx).await,
    }
}

/// Removes what an interrupted attempt may have left on the target (a killed pg_repack's
/// objects). Called when an attempt ends without success, before any retry; `last` says no
/// attempt follows (failed for good, or cancelled).
pub async fn cleanup(ctx: &OpContext, last: bool) {
    let result = match ctx.op.kind() {
        Ok(OperationKind::Maintenance) => target::maintenance::cleanup(ctx).await,
        // A provisioning is resumed by its next attempt; only the last one tears down.
        Ok(OperationKind::ProvisionInstance) if last => crate::managed::ops::cleanup_failed_provision(ctx).await,
        _ => Ok(()),
    };
    if let Err(e) = result {
        ctx.log("warn", &format!("cleanup after the interrupted attempt failed: {e}")).await;
    }
}

/// Ends the operation and applies its effect on the resource, in one transaction.
pub async fn complete(
    state: &AppState,
    op: &OperationRow,
    worker: Option<&str>,
    status: OperationStatus,
    error: Option<&OpError>,
) -> Result<bool, sqlx::Error> {
    // A worker records its outcome through the engine's pool; a cancel from HTTP through the main one.
    let mut tx = if worker.is_some() { state.engine_db.begin().await? } else { state.db.begin().await? };
    if !queue::finish(&mut tx, op.id, worker, status, error).await? {
        return Ok(false);
    }
    apply_effects(&mut tx, op, status).await?;
    tx.commit().await?;
    Ok(true)
}

async fn apply_effects(
    tx: &mut Transaction<'_, Postgres>,
    op: &OperationRow,
    status: OperationStatus,
) -> Result<(), sqlx::Error> {
    let ok = status == OperationStatus::Succeeded;
    let kind: OperationKind = match op.kind.parse() {
        Ok(k) => k,
        Err(_) => return Ok(()),
    };
    let param = |name: &str| op.params.get(name).and_then(|v| v.as_str()).and_then(|s| s.parse::<Uuid>().ok());
    match kind {
        OperationKind::ProvisionDatabase | OperationKind::UpdateDatabase => {
            // Only the latest operation on a database decides its status.
            sqlx::query(
                "UPDATE databases SET status = $3, updated_at = now() WHERE id = $1 AND last_operation_id = $2",
            )
            .bind(op.target_id)
            .bind(op.id)
            .bind(if ok { "ready" } else { "failed" })
            .execute(&mut **tx)
            .await?;
            if ok {
                sqlx::query("UPDATE credentials SET status = 'active' WHERE database_id = $1 AND kind = 'static'")
                    .bind(op.target_id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        OperationKind::DeleteDatabase => {
            if ok {
                sqlx::query(
                    "UPDATE databases SET status = 'deleted', deleted_at = now(), updated_at = now() WHERE id = $1",
                )
                .bind(op.target_id)
                .execute(&mut **tx)
                .await?;
                sqlx::query("UPDATE credentials SET status = 'revoked' WHERE database_id = $1")
                    .bind(op.target_id)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM schedules WHERE database_id = $1")
                    .bind(op.target_id)
                    .execute(&mut **tx)
                    .await?;
            } else {
                sqlx::query(
                    "UPDATE databases SET status = 'failed', updated_at = now() WHERE id = $1 AND last_operation_id = $2",
                )
                .bind(op.target_id)
                .bind(op.id)
                .execute(&mut **tx)
                .await?;
            }
        }
        OperationKind::RotateCredential => {
            if let Some(cred) = param("credential_id") {
                let sql = if ok {
                    "UPDATE credentials SET password_enc = pending_password_enc, pending_password_enc = NULL, \
                     rotated_at = now() WHERE id = $1 AND pending_password_enc IS NOT NULL"
                } else {
                    "UPDATE credentials SET pending_password_enc = NULL WHERE id = $1"
                };
                sqlx::query(sql).bind(cred).execute(&mut **tx).await?;
            }
        }
        OperationKind::CreateLease => {
            if let Some(cred) = param("credential_id") {
                sqlx::query("UPDATE credentials SET status = $2 WHERE id = $1 AND status = 'pending'")
                    .bind(cred)
                    .bind(if ok { "active" } else { "revoked" })
                    .execute(&mut **tx)
                    .await?;
            }
        }
        OperationKind::Maintenance => {}
        OperationKind::ProvisionInstance
        | OperationKind::UpdateInstance
        | OperationKind::StartInstance
        | OperationKind::StopInstance
        | OperationKind::RestartInstance
        | OperationKind::DeleteInstance => instance_effects(tx, op, kind, ok).await?,
        OperationKind::RevokeLease => {
            if let Some(cred) = param("credential_id") {
                // A failed or cancelled revocation puts the lease back to `active`: the role
                // still exists, and the reaper revokes it again once it has expired (it would
                // otherwise stay `revoking` forever, with its role and sessions alive).
                let sql = if ok {
                    "UPDATE credentials SET status = 'revoked' WHERE id = $1"
                } else {
                    "UPDATE credentials SET status = 'active' WHERE id = $1 AND status = 'revoking'"
                };
                sqlx::query(sql).bind(cred).execute(&mut **tx).await?;
            }
        }
    }
    Ok(())
}

/// The instance's status after one of its operations. Only its latest operation decides.
async fn instance_effects(
    tx: &mut Transaction<'_, Postgres>,
    op: &OperationRow,
    kind: OperationKind,
    ok: bool,
) -> Result<(), sqlx::Error> {
    let status = match (kind, ok) {
        (OperationKind::ProvisionInstance | OperationKind::StartInstance | OperationKind::RestartInstance, true) => {
            Some("ready")
        }
        (OperationKind::StopInstance, true) => Some("stopped"),
        (OperationKind::DeleteInstance, true) => Some("deleted"),
        (OperationKind::ProvisionInstance | OperationKind::DeleteInstance, false) => Some("failed"),
        // A failed start/stop/settings change leaves the instance as it was; the health
        // check reports whether it serves.
        _ => None,
    };
    if let Some(status) = status {
        sqlx::query(
            "UPDATE instances SET status = $3, version = version + 1, \
             deleted_at = CASE WHEN $3 = 'deleted' THEN now() END, \
             health = CASE WHEN $3 = 'ready' THEN 'healthy' ELSE health END, \
             health_message = CASE WHEN $3 = 'ready' THEN NULL ELSE health_message END, \
             health_checked_at = CASE WHEN $3 = 'ready' THEN now() ELSE health_checked_at END \
             WHERE id = $1 AND (last_operation_id = $2 OR last_operation_id IS NULL)",
        )
        .bind(op.target_id)
        .bind(op.id)
        .bind(status)
        .execute(&mut **tx)
        .await?;
    }
    if kind == OperationKind::UpdateInstance && ok {
        if let Some(settings) = op.params.get("settings") {
            sqlx::query("UPDATE instances SET settings = $2, version = version + 1 WHERE id = $1")
                .bind(op.target_id)
                .bind(settings)
                .execute(&mut **tx)
                .await?;
        }
    }
    if kind == OperationKind::DeleteInstance && ok {
        // A forced delete took the instance's databases with it.
        sqlx::query(
            "UPDATE credentials SET status = 'revoked' WHERE database_id IN \
             (SELECT id FROM databases WHERE instance_id = $1 AND status <> 'deleted')",
        )
        .bind(op.target_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM schedules WHERE database_id IN (SELECT id FROM databases WHERE instance_id = $1)")
            .bind(op.target_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE databases SET status = 'deleted', deleted_at = now(), updated_at = now() \
             WHERE instance_id = $1 AND status <> 'deleted'",
        )
        .bind(op.target_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
