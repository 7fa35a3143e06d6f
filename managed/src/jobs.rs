//! The operations on managed instances: typed payloads, their steps on the host (in
//! [`super::ops`]), and the instance's status when each ends.

use dbaas_client::{ArchivingState, BaseBackupKind, OperationKind, Settings};
use dbaas_domain::operation as queue;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::ops;
use dbaas_engine::Operation;

use dbaas_domain::operation::OpContext;
use dbaas_domain::operation::OperationRow;
use dbaas_domain::state::AppState;
use dbaas_engine::OpError;

/// Why an instance operation was queued (the API, the health check, `dev`), for its log.
macro_rules! instance_job {
    ($($name:ident: $doc:literal),* $(,)?) => {$(
        #[doc = $doc]
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub reason: Option<String>,
        }
    )*};
}

instance_job! {
    ProvisionInstance: "initdb, configuration, TLS, start, the service's role.",
    StartInstance: "Starts the server.",
    StopInstance: "Stops the server (fast: sessions are disconnected).",
    RestartInstance: "Stops and starts the server.",
    DeleteInstance: "Stops the server and removes its directory.",
    RenewCertificate: "A new server certificate from the instance's CA, loaded by reload.",
}

/// New settings, applied by reload or restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstance {
    pub settings: Settings,
}

/// The instance's status after one of its operations; only its latest operation decides.
pub(crate) async fn set_status(tx: &mut PgConnection, op: &OperationRow, status: &str) -> Result<(), sqlx::Error> {
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
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Only a success changes the status (a failed start/stop leaves it as it was).
async fn set_status_if(tx: &mut PgConnection, op: &OperationRow, ok: bool, status: &str) -> Result<(), sqlx::Error> {
    if ok {
        set_status(tx, op, status).await?;
    }
    Ok(())
}

/// Starts the server (stopping it first for a restart) and waits until it serves.
async fn start(ctx: &OpContext, restart: bool) -> Result<(), OpError> {
    let (inst, node) = crate::server::load(ctx).await?;
    if restart {
        ctx.step("restarting the server").await;
        node.stop("fast").await?;
    } else {
        ctx.step("starting the server").await;
    }
    crate::server::start_patiently(ctx, &node).await?;
    crate::server::check_ready(ctx, &inst).await?;
    if inst.archiving == ArchivingState::On {
        // A start after a crash ends a recovery too.
        crate::pitr::ops::wake_archiver(ctx, &node).await?;
    }
    if inst.archiving == ArchivingState::Off && inst.repo_key_enc.is_some() {
        // Archiving was configured while the server was stopped (`EnableArchiving`).
        crate::pitr::ops::stanza(ctx, &inst, &node).await?;
        crate::pitr::ops::base_backup(ctx, &node, BaseBackupKind::Full).await?;
    }
    Ok(())
}

impl Operation for ProvisionInstance {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::ProvisionInstance;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        let (inst, node) = crate::server::load(ctx).await?;
        ops::provision(ctx, &inst, &node, None).await?;
        // The host's proxy learns the instance's CA and public name before its first database.
        ctx.state.sync_proxy(inst.id).await
    }
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        provisioned(tx, op, ok).await
    }
    /// Only the last attempt tears down: the others are resumed by the next attempt.
    async fn cleanup(&self, ctx: &OpContext, last: bool) -> Result<(), OpError> {
        if last {
            ops::cleanup_failed_provision(ctx).await?;
        }
        Ok(())
    }
}

/// A provisioning's end: the status, and the first full base backup queued behind it.
pub(crate) async fn provisioned(tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
    set_status(tx, op, if ok { "ready" } else { "failed" }).await?;
    let archiving: Option<String> = sqlx::query_scalar("SELECT archiving FROM instances WHERE id = $1")
        .bind(op.target_id)
        .fetch_optional(&mut *tx)
        .await?;
    if ok && archiving.as_deref() == Some("on") {
        // The first full base backup opens the recovery window. Queued behind this
        // operation, not made the instance's latest: the instance is ready already.
        let job = crate::pitr::jobs::BaseBackup {
            kind: BaseBackupKind::Full,
            reason: Some("the first base backup after provisioning".into()),
        };
        queue::enqueue_on(tx, &job, "instance", op.target_id).await?;
    }
    Ok(())
}

impl Operation for UpdateInstance {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::UpdateInstance;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        let (inst, node) = crate::server::load(ctx).await?;
        ops::update_settings(ctx, &inst, &node, &self.settings).await
    }
    /// A failed change leaves the instance and its recorded settings as they were.
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        if ok {
            sqlx::query("UPDATE instances SET settings = $2, version = version + 1 WHERE id = $1")
                .bind(op.target_id)
                .bind(sqlx::types::Json(&self.settings))
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

impl Operation for RenewCertificate {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::RenewCertificate;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        let (inst, node) = crate::server::load(ctx).await?;
        super::certs::renew(ctx, &inst, &node).await
    }
    /// The status stays: the server served throughout.
    async fn on_outcome(&self, _: &mut PgConnection, _: &OperationRow, _: bool) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl Operation for StartInstance {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::StartInstance;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        start(ctx, false).await
    }
    /// A failed start leaves the status; the health check reports whether it serves.
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        set_status_if(tx, op, ok, "ready").await
    }
}

impl Operation for StopInstance {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::StopInstance;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        let (_, node) = crate::server::load(ctx).await?;
        ctx.step("stopping the server (fast: sessions are disconnected)").await;
        Ok(node.stop("fast").await?)
    }
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        set_status_if(tx, op, ok, "stopped").await
    }
}

impl Operation for RestartInstance {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::RestartInstance;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        start(ctx, true).await
    }
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        set_status_if(tx, op, ok, "ready").await
    }
}

impl Operation for DeleteInstance {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::DeleteInstance;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        let (_, node) = crate::server::load(ctx).await?;
        ctx.step(&format!("stopping the server and removing {}", node.dir)).await;
        node.remove().await?;
        ctx.state.hosts.forget(node.host.id).await;
        // Its databases leave the host's proxy (a `deleting` instance is not routed).
        crate::proxy::sync::sync_host(&ctx.state, node.host.id).await
    }
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        if !ok {
            return set_status(tx, op, "failed").await;
        }
        set_status(tx, op, "deleted").await?;
        // A forced delete took the instance's databases with it.
        sqlx::query(
            "UPDATE credentials SET status = 'revoked' WHERE database_id IN \
             (SELECT id FROM databases WHERE instance_id = $1 AND status <> 'deleted')",
        )
        .bind(op.target_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM schedules WHERE database_id IN (SELECT id FROM databases WHERE instance_id = $1)")
            .bind(op.target_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE databases SET status = 'deleted', deleted_at = now(), updated_at = now() \
             WHERE instance_id = $1 AND status <> 'deleted'",
        )
        .bind(op.target_id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// A point-in-time restore of the instance (in place), or a new instance seeded from another's
/// repository (`from`); the steps are in [`crate::pitr::instance_restore`].
impl Operation for crate::pitr::instance_restore::RestoreInstance {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::RestoreInstance;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        match self.from {
            None => crate::pitr::instance_restore::in_place(ctx, &self.to).await,
            Some(source) => {
                let (inst, node) = crate::server::load(ctx).await?;
                ops::provision(ctx, &inst, &node, Some((source, &self.to))).await
            }
        }
    }
    async fn on_outcome(&self, tx: &mut PgConnection, op: &OperationRow, ok: bool) -> Result<(), sqlx::Error> {
        if self.from.is_some() {
            return provisioned(tx, op, ok).await;
        }
        set_status(tx, op, if ok { "ready" } else { "failed" }).await
    }
    /// A new instance that will not be retried leaves nothing on the host.
    async fn cleanup(&self, ctx: &OpContext, last: bool) -> Result<(), OpError> {
        if last && self.from.is_some() {
            ops::cleanup_failed_provision(ctx).await?;
        }
        Ok(())
    }
}
