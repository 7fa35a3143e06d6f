//! The point-in-time operations on managed instances: archiving for an instance made before
//! it existed, and base backups. Like every instance operation they run one at a time per
//! instance, are logged, cancellable, and repeatable step by step.

use dbaas_client::{BaseBackupKind, OperationKind};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use dbaas_domain::operation::{OpContext, OperationRow};
use dbaas_domain::state::AppState;
use dbaas_engine::{OpError, Operation};

use crate::server;

/// Settings (`wal_level`, `archive_mode`, `archive_command`, `archive_timeout`), a restart
/// when the server runs, the stanza, then the first full base backup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableArchiving {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A base backup of the kind asked for (the schedule's, the API's, or the first full one
/// after provisioning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseBackup {
    pub kind: BaseBackupKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Operation for EnableArchiving {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::EnableArchiving;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        let (inst, node) = server::load(ctx).await?;
        ctx.step("pgBackRest configuration and repository").await;
        let Some(lines) = super::ops::prepare(ctx, &inst, &node).await? else {
            return Ok(());
        };
        ctx.step("archiving settings in dbaas.conf").await;
        server::write_config(&node, &inst.settings.0, Some(&lines)).await?;
        if node.running().await? {
            // archive_mode and wal_level take effect at a restart only.
            ctx.step("restarting the server (archive_mode and wal_level need it)").await;
            node.stop("fast").await?;
            server::start_patiently(ctx, &node).await?;
            server::check_ready(ctx, &inst).await?;
        } else {
            // The stanza needs the server: the instance's next start makes it (and the first
            // full backup), see `jobs::start`.
            ctx.log("info", "the server is stopped: archiving starts with its next start").await;
            return Ok(());
        }
        super::ops::stanza(ctx, &inst, &node).await?;
        super::ops::base_backup(ctx, &node, BaseBackupKind::Full).await
    }
    async fn on_outcome(&self, _: &mut PgConnection, _: &OperationRow, _: bool) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl Operation for BaseBackup {
    type Host = AppState;
    const KIND: OperationKind = OperationKind::BaseBackup;
    async fn run(&self, ctx: &OpContext) -> Result<(), OpError> {
        let (inst, node) = server::load(ctx).await?;
        if inst.archiving != dbaas_client::ArchivingState::On {
            return Err(OpError::permanent("not_archiving", format!("instance {} archives no WAL", inst.name)));
        }
        super::ops::base_backup(ctx, &node, self.kind).await
    }
    async fn on_outcome(&self, _: &mut PgConnection, _: &OperationRow, _: bool) -> Result<(), sqlx::Error> {
        Ok(())
    }
}
