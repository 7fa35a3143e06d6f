//! The steps that give an instance WAL archiving and base backups, each safe to repeat.

use std::time::Duration;

use dbaas_client::{ArchivingState, BaseBackupKind};
use dbaas_domain::catalog::conn::InstanceRow;
use dbaas_domain::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_hosts::executor::{Command, ExecError, Executor};

use super::config::{self, Paths, PGBACKREST};
use crate::node::Node;

/// The longest a base backup or a restore may run before the attempt is given up (and
/// retried: pgBackRest resumes or cleans up what it left).
pub const LONG_COMMAND: Duration = Duration::from_secs(6 * 3600);

/// Runs one pgBackRest command of this instance as the postgres user.
pub async fn pgbackrest(node: &Node, paths: &Paths, args: &[&str], limit: Duration) -> Result<String, OpError> {
    let [config, stanza] = paths.args();
    let mut all = vec![config.as_str(), stanza.as_str()];
    all.extend_from_slice(args);
    match node.exec.run(&Command::new(PGBACKREST, &all)?.as_postgres().timeout(limit)).await {
        Ok(out) => Ok(out.stdout),
        // [050] LockAcquireError: another pgBackRest command of this stanza runs — one left
        // behind by a process that died (the API, killed mid-backup) finishes or gives up
        // shortly, so the attempt is retried rather than failed.
        Err(ExecError::Failed { stderr, .. }) if stderr.contains("[050]") => {
            Err(OpError::retryable("repository_busy", format!("another pgBackRest command holds the stanza: {stderr}")))
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_archiving(ctx: &OpContext, inst: &InstanceRow, state: ArchivingState) -> Result<(), OpError> {
    sqlx::query("UPDATE instances SET archiving = $2 WHERE id = $1")
        .bind(inst.id)
        .bind(match state {
            ArchivingState::Off => "off",
            ArchivingState::On => "on",
            ArchivingState::Unavailable => "unavailable",
        })
        .execute(&ctx.state.db)
        .await?;
    Ok(())
}

/// Makes the repository's configuration (and its cipher pass, once) and returns the archiving
/// lines for `dbaas.conf`; `None` when the host has no pgBackRest (the instance then runs
/// without archiving, and its recovery window says why).
pub async fn prepare(ctx: &OpContext, inst: &InstanceRow, node: &Node) -> Result<Option<String>, OpError> {
    if !config::available(node).await? {
        ctx.log("warn", &format!("{PGBACKREST} is not on host {}: no WAL archiving", node.host.name)).await;
        set_archiving(ctx, inst, ArchivingState::Unavailable).await?;
        return Ok(None);
    }
    let paths = Paths::of(node);
    let policy = config::policy(&ctx.state.db, inst).await?;
    let pass = config::cipher_pass(&ctx.state.db, &ctx.state.key, inst).await?;
    config::install(node, &paths, &pass, &policy).await?;
    Ok(Some(config::conf_lines(&paths, &policy)))
}

/// The archiving lines for an instance that has its repository (a settings change rewrites
/// `dbaas.conf` with them), `None` for one that has none.
pub async fn lines_if_archiving(ctx: &OpContext, inst: &InstanceRow, node: &Node) -> Result<Option<String>, OpError> {
    if inst.repo_key_enc.is_none() || inst.archiving == ArchivingState::Unavailable {
        return Ok(None);
    }
    let policy = config::policy(&ctx.state.db, inst).await?;
    Ok(Some(config::conf_lines(&Paths::of(node), &policy)))
}

/// `stanza-create` (a no-op when the stanza exists and matches the cluster), then `check`,
/// which switches WAL and waits until the switched file is in the repository: archiving
/// works end to end before the instance counts as archiving.
pub async fn stanza(ctx: &OpContext, inst: &InstanceRow, node: &Node) -> Result<(), OpError> {
    let paths = Paths::of(node);
    ctx.step(&format!("pgBackRest stanza {} (repository {})", paths.stanza, paths.repo)).await;
    pgbackrest(node, &paths, &["stanza-create"], Duration::from_secs(300)).await?;
    ctx.step("pgBackRest check: a WAL file reaches the repository").await;
    pgbackrest(node, &paths, &["check"], Duration::from_secs(300)).await?;
    set_archiving(ctx, inst, ArchivingState::On).await?;
    ctx.log("info", "WAL archiving works").await;
    Ok(())
}

/// A base backup (pgBackRest then expires what the retention no longer needs).
pub async fn base_backup(ctx: &OpContext, node: &Node, kind: BaseBackupKind) -> Result<(), OpError> {
    let paths = Paths::of(node);
    ctx.step(&format!("pgBackRest {} backup", kind.as_str())).await;
    let started = std::time::Instant::now();
    pgbackrest(node, &paths, &["backup", &format!("--type={}", kind.as_str())], LONG_COMMAND).await?;
    let info = super::window::info(node).await?;
    match info.backups.last() {
        Some(b) => {
            ctx.log(
                "info",
                &format!(
                    "backup {} ({}) in {} ms: {} bytes of cluster, {} bytes added to the repository; {} base backup(s) kept",
                    b.label,
                    b.kind.as_str(),
                    started.elapsed().as_millis(),
                    b.size_bytes,
                    b.repository_bytes,
                    info.backups.len()
                ),
            )
            .await
        }
        None => return Err(OpError::permanent("backup_missing", "pgBackRest lists no backup after taking one")),
    }
    Ok(())
}

/// A checkpoint right after recovery ends. PostgreSQL 15's checkpointer plans its next wake-up
/// while the end-of-recovery checkpoint runs, still "in recovery", when `archive_timeout` does
/// not count: without this, a quiet instance archives nothing for up to `checkpoint_timeout`
/// after a restore or a crash restart (seen here: 90 s and more with `archive_timeout` 2 s).
pub async fn wake_archiver(ctx: &OpContext, node: &Node) -> Result<(), OpError> {
    super::scratch::psql(node, "CHECKPOINT").await?;
    ctx.log("info", "checkpoint after recovery (archive_timeout counts again)").await;
    Ok(())
}
