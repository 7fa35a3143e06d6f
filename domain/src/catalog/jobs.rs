//! The operations on databases and their credentials: typed payloads, what each runs on the
//! target, and what each changes in the state database when it ends.

use dbaas_client::{CreateMaintenance, OperationKind};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use dbaas_engine::Operation;

use crate::operation::OpContext;
use crate::operation::OperationRow;
use crate::state::AppState;
use dbaas_engine::OpError;

/// Creates (or re-applies) a database with its roles: create, re-adopt, reconcile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionDatabase {
    /// Declared again after being retained.
    #[serde(default)]
    pub readopt: bool,
    /// Asked for by `POST /v1/databases/{id}/reconcile`.
    #[serde(default)]
    pub reconcile: bool,
    /// Extensions the new declaration no longer lists.
    #[serde(default)]
    pub drop_extensions: Vec<String>,
    /// A new database filled from this backup once its phases are done.
    #[serde(default)]
    pub restore_from: Option<Uuid>,
}

/// Applies a PATCH that changes the target (extensions, connection limit).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDatabase {
    #[serde(default)]
    pub drop_extensions: Vec<String>,
}

/// The safe delete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteDatabase {
    /// How long open sessions may stay (default: the service's setting).
    pub grace_ms: Option<u64>,
    /// A protected database dropped by an admin.
    #[serde(default)]
    pub force: bool,
    /// The backup taken before anything is dropped (recorded with the delete).
    #[serde(default)]
    pub final_backup: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateCredential {
    pub credential_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLease {
    pub credential_id: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// Its time ran out (the reaper).
    Expired,
    /// Revoked by a caller.
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeLease {
    pub credential_id: Uuid,
    pub reason: RevokeReason,
}

/// A schedule's slot a maintenance run belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledSlot {
    pub schedule_id: Uuid,
    pub slot: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    pub request: CreateMaintenance,
    /// Set when a schedule fired it.
    #[serde(default)]
    pub scheduled: Option<ScheduledSlot>,
}

/// Only the latest operation on a database decides its status.
async fn settle_provisioning(tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE databases SET status = $3, updated_at = now() WHERE id = $1 AND last_operation_id = $2")
        .bind(op.target_id)
        .bind(op.id)
        .bind(if ok { "ready" } else { "failed" })
        .execute(&mut *tx)
        .await?;
    if ok {
        sqlx::query("UPDATE credentials SET status = 'active' WHERE database_id = $1 AND kind = 'static'")
            .bind(op.target_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

impl Operation for ProvisionDatabase {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::ProvisionDatabase;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        super::provision::run(ctx, &self.drop_extensions).await?;
        match self.restore_from {
            Some(backup) => super::backup_restore::restore_into(ctx, backup).await,
            None => Ok(()),
        }
    }
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        settle_provisioning(tx, op, ok).await
    }
}

impl Operation for UpdateDatabase {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::UpdateDatabase;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        super::provision::run(ctx, &self.drop_extensions).await
    }
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        settle_provisioning(tx, op, ok).await
    }
}

impl Operation for DeleteDatabase {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::DeleteDatabase;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        if let Some(backup) = self.final_backup {
            super::backups::final_backup(ctx, backup).await?;
        }
        super::delete::run(ctx, self.grace_ms.map(std::time::Duration::from_millis)).await
    }
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        if let (Some(backup), false) = (self.final_backup, ok) {
            // Not taken (or not recorded as taken): never listed as good.
            sqlx::query(
                "UPDATE backups SET status = 'failed', error = $2, finished_at = now() WHERE id = $1 AND status = 'running'",
            )
            .bind(backup)
            .bind(format!("the delete operation {} failed before the backup was complete", op.id))
            .execute(&mut *tx)
            .await?;
        }
        if !ok {
            sqlx::query(
                "UPDATE databases SET status = 'failed', updated_at = now() WHERE id = $1 AND last_operation_id = $2",
            )
            .bind(op.target_id)
            .bind(op.id)
            .execute(&mut *tx)
            .await?;
            return Ok(());
        }
        sqlx::query("UPDATE databases SET status = 'deleted', deleted_at = now(), updated_at = now() WHERE id = $1")
            .bind(op.target_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE credentials SET status = 'revoked' WHERE database_id = $1")
            .bind(op.target_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM schedules WHERE database_id = $1").bind(op.target_id).execute(&mut *tx).await?;
        Ok(())
    }
}

impl Operation for RotateCredential {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::RotateCredential;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        super::credentials::rotate(ctx, self.credential_id).await
    }
    async fn on_outcome(&self, tx: &mut PgConnection, _op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        // The pending password becomes the password once the instance has it.
        let sql = if ok {
            "UPDATE credentials SET password_enc = pending_password_enc, pending_password_enc = NULL, \
             rotated_at = now() WHERE id = $1 AND pending_password_enc IS NOT NULL"
        } else {
            "UPDATE credentials SET pending_password_enc = NULL WHERE id = $1"
        };
        sqlx::query(sql).bind(self.credential_id).execute(&mut *tx).await?;
        Ok(())
    }
}

impl Operation for CreateLease {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::CreateLease;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        super::credentials::create_lease(ctx, self.credential_id).await
    }
    async fn on_outcome(&self, tx: &mut PgConnection, _op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE credentials SET status = $2 WHERE id = $1 AND status = 'pending'")
            .bind(self.credential_id)
            .bind(if ok { "active" } else { "revoked" })
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

impl Operation for RevokeLease {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::RevokeLease;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        super::credentials::revoke_lease(ctx, self.credential_id).await
    }
    async fn on_outcome(&self, tx: &mut PgConnection, _op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        // A failed or cancelled revocation puts the lease back to `active`: the role still
        // exists, and the reaper revokes it again once it has expired (it would otherwise
        // stay `revoking` forever, with its role and sessions alive).
        let sql = if ok {
            "UPDATE credentials SET status = 'revoked' WHERE id = $1"
        } else {
            "UPDATE credentials SET status = 'active' WHERE id = $1 AND status = 'revoking'"
        };
        sqlx::query(sql).bind(self.credential_id).execute(&mut *tx).await?;
        Ok(())
    }
}

impl Operation for Maintenance {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::Maintenance;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        super::maintenance::run(ctx, self).await
    }
    async fn on_outcome(&self, _tx: &mut PgConnection, _op: &OperationRow, _ok: bool) -> Result<(), sqlx::Error> {
        Ok(())
    }
    async fn cleanup(&self, ctx: &OpContext, _last: bool) -> Result<(), OpError> {
        super::maintenance::cleanup(ctx, &self.request).await
    }
}

/// Removes what earlier repacks left in the database (`catalog::service_extensions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveServiceExtensions {}

impl Operation for RemoveServiceExtensions {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::RemoveServiceExtensions;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        super::service_extensions::run(ctx).await
    }
    async fn on_outcome(&self, _tx: &mut PgConnection, _op: &OperationRow, _ok: bool) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// Dumps the database into its backup's store, sealed (`catalog::backups`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupDatabase {
    pub backup_id: Uuid,
}

impl Operation for BackupDatabase {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::BackupDatabase;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        super::backups::backup(ctx, self.backup_id).await
    }
    /// A backup is listed as good only once its operation succeeded; the object was
    /// committed (complete) before that.
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        let (status, error) =
            if ok { ("succeeded", None) } else { ("failed", Some(format!("operation {} failed; see its log", op.id))) };
        sqlx::query("UPDATE backups SET status = $2, error = $3, finished_at = now() WHERE id = $1")
            .bind(self.backup_id)
            .bind(status)
            .bind(error)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// Restores a backup into a scratch database and compares it with its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBackup {
    pub backup_id: Uuid,
}

impl Operation for VerifyBackup {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::VerifyBackup;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        super::drill::verify(ctx, self.backup_id).await
    }
    /// The result is recorded on the backup by `run` (passed or failed, with why).
    async fn on_outcome(&self, _tx: &mut PgConnection, _op: &OperationRow, _ok: bool) -> Result<(), sqlx::Error> {
        Ok(())
    }
    async fn cleanup(&self, ctx: &OpContext, _last: bool) -> Result<(), OpError> {
        super::drill::cleanup(ctx, self.backup_id).await
    }
}

/// What a `restore_database` operation does to its database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RestoreAction {
    /// Restore a backup beside the database, check it, swap it in (`catalog::restore`).
    InPlace { backup_id: Uuid, retain_hours: u32, grace_ms: Option<u64> },
    /// Drop the previous database an in-place restore kept, its time being up.
    DropPrevious,
    /// Swap the kept previous database back in (`catalog::restore::undo`).
    Undo { grace_ms: Option<u64> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreDatabase {
    pub action: RestoreAction,
}

impl Operation for RestoreDatabase {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::RestoreDatabase;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        match &self.action {
            RestoreAction::InPlace { backup_id, grace_ms, .. } => {
                super::restore::run(ctx, *backup_id, grace_ms.map(std::time::Duration::from_millis)).await
            }
            RestoreAction::DropPrevious => super::restore::drop_retained(ctx).await,
            RestoreAction::Undo { grace_ms } => {
                super::restore::undo(ctx, grace_ms.map(std::time::Duration::from_millis)).await
            }
        }
    }
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        match &self.action {
            RestoreAction::InPlace { retain_hours, .. } => {
                // A failed restore leaves the database as it was (the side copy is dropped
                // before anything is swapped; the swap's own steps are retried): ready.
                settle_provisioning(tx, op, true).await?;
                if ok {
                    sqlx::query(
                        "UPDATE databases SET retained_until = now() + make_interval(hours => $2) WHERE id = $1",
                    )
                    .bind(op.target_id)
                    .bind(*retain_hours as i32)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            // The lifecycle cleared `retained_until` when it enqueued the drop.
            RestoreAction::DropPrevious => {}
            // Either way the database is usable: swapped back, or not yet moved (a failed undo
            // says why; its steps resume on a retry).
            RestoreAction::Undo { .. } => settle_provisioning(tx, op, true).await?,
        }
        Ok(())
    }
}
