//! A database as it was at a point in time: the instance restored to that time in a scratch
//! cluster ([`super::scratch`]), the one database dumped from it into its point-in-time
//! backup, the scratch cluster removed. The restore then goes on with that backup like any
//! other (manifest checks, the in-place swap, the kept previous copy); the live cluster and
//! the other databases on it are never touched.

use std::time::Instant;

use dbaas_client::ArchivingState;
use dbaas_domain::catalog::record::load_instance;
use dbaas_domain::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_store::backups::BackupRow;

use super::scratch::{self, Target};
use crate::SERVICE_ADMIN;

/// What [`dbaas_domain::state::AppState::point_in_time`] calls.
pub fn hook<'a>(
    ctx: &'a OpContext,
    backup: &'a BackupRow,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), OpError>> + Send + 'a>> {
    Box::pin(materialize(ctx, backup))
}

async fn materialize(ctx: &OpContext, backup: &BackupRow) -> Result<(), OpError> {
    let s = &ctx.state;
    let target = backup
        .recovery_target
        .ok_or_else(|| OpError::permanent("not_restorable", "a point-in-time backup without its time"))?;
    let db = dbaas_store::databases::load(&s.db, backup.database_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the database record is gone"))?;
    let inst = load_instance(&s.db, db.instance_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the instance record is gone"))?;
    if inst.archiving != ArchivingState::On {
        return Err(OpError::permanent("not_archiving", format!("instance {} archives no WAL", inst.name)));
    }
    let live = crate::server::node_of(s, &inst).await?;
    let started = Instant::now();
    // The service (to open the backup login) and the backup login (to dump) only.
    let backup_login = dbaas_domain::catalog::backup_login::name(&db.physical());
    let sc = scratch::open(ctx, &inst, &live, backup.id, Target::Time(target), &[SERVICE_ADMIN, &backup_login]).await?;
    ctx.step(&format!("dumping {} from the scratch cluster", db.physical_name)).await;
    let dumping = Instant::now();
    let mut server = inst.clone();
    server.port = i32::from(sc.node.port);
    let dumped = dbaas_domain::catalog::backups::backup_from(ctx, backup.id, Some(&server)).await;
    scratch::close(ctx, &sc.node).await;
    dumped?;
    ctx.log(
        "info",
        &format!(
            "parts: repository restore {} ms, recovery {} ms, dump {} ms",
            sc.restored_ms,
            sc.recovered_ms,
            dumping.elapsed().as_millis()
        ),
    )
    .await;
    sqlx::query("UPDATE backups SET status = 'succeeded', finished_at = now(), error = NULL WHERE id = $1")
        .bind(backup.id)
        .execute(&s.db)
        .await?;
    ctx.log(
        "info",
        &format!("point-in-time backup made in {} ms; scratch cluster removed", started.elapsed().as_millis()),
    )
    .await;
    Ok(())
}
