//! In-place restore: the backup is restored into a side database `<physical>_restore` (as the
//! database's own admin role, one transaction), its row counts checked against the manifest,
//! and only then swapped in: CONNECT revoked, sessions given the grace period then
//! terminated, the current database renamed to `<physical>_retained` and the side database
//! to the database's name. The previous database stays as `<physical>_retained` until the
//! record's `retained_until` (the restore can be undone by hand: docs/runbooks/restore.md),
//! then the backup lifecycle drops it. Physical names contain no `_`, so these names are
//! injective; each carries a marker naming this database, and nothing unmarked is touched.
//!
//! Every step reads the catalog first, so an attempt killed anywhere resumes: a side database
//! marked complete is not restored again; a swap half done (the database renamed away, the
//! side not yet renamed in) is finished; a swap done by this operation is not done twice.

use std::time::Duration;

use dbaas_client::Access;
use sqlx::PgConnection;
use uuid::Uuid;

use super::conn::{exec, Locked};
use super::record;
use crate::naming::{Marker, PgQuote, PhysicalNames};
use crate::ops::runner::OpContext;
use crate::ops::OpError;

fn side(names: &PhysicalNames) -> String {
    format!("{}_restore", names.database)
}

pub fn retained(names: &PhysicalNames) -> String {
    format!("{}_retained", names.database)
}

fn marker_restoring(db: Uuid) -> String {
    format!("dbaas:restore:{db}")
}

fn marker_restored(db: Uuid, op: Uuid) -> String {
    format!("dbaas:restored:{db}:{op}")
}

fn marker_retained(db: Uuid, op: Uuid) -> String {
    format!("dbaas:retained:{db}:{op}")
}

async fn comment_of(conn: &mut PgConnection, name: &str) -> Result<Option<String>, OpError> {
    super::ownership::database_comment(conn, name).await
}

/// Drops `name` if its marker says it is one of this database's side or retained copies.
async fn drop_ours(conn: &mut PgConnection, name: &str, db: Uuid, prefixes: &[&str]) -> Result<(), OpError> {
    let ours = |c: &str| prefixes.iter().any(|p| c.starts_with(&format!("{p}{db}")));
    super::ownership::drop_marked_database(conn, name, ours, "marked as this database's copy").await
}

/// `ALTER DATABASE … RENAME`, retried while terminated sessions are still going away.
async fn rename(conn: &mut PgConnection, from: &str, to: &str) -> Result<(), OpError> {
    let sql = format!("ALTER DATABASE {} RENAME TO {}", from.pg_ident(), to.pg_ident());
    let mut tries = 0;
    loop {
        match sqlx::query(&sql).execute(&mut *conn).await {
            Ok(_) => return Ok(()),
            Err(e) if tries < 40 && e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55006") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn run(ctx: &OpContext, backup_id: Uuid, grace: Option<Duration>) -> Result<(), OpError> {
    let s = &ctx.state;
    let (db, inst, target) = record::for_operation(&s.db, &s.key, ctx.op.target_id).await?;
    let names = db.physical();
    let (side_db, kept) = (side(&names), retained(&names));
    let op = ctx.op.id;
    let mut locked = Locked::database(&target, &names.database).await?;

    let swapped = comment_of(&mut locked.conn, &kept).await?.as_deref() == Some(&marker_retained(db.id, op));
    if swapped {
        ctx.log("info", "an earlier attempt already swapped the restored database in").await;
    } else {
        let side_comment = comment_of(&mut locked.conn, &side_db).await?;
        if side_comment.as_deref() == Some(&marker_restored(db.id, op)) {
            ctx.log("info", &format!("{side_db} holds the complete restore (an earlier attempt)")).await;
        } else {
            ctx.step(&format!("side database {side_db}")).await;
            drop_ours(&mut locked.conn, &side_db, db.id, &["dbaas:restore:", "dbaas:restored:"]).await?;
            let admin = names.role(Access::Admin);
            super::ownership::create_marked_database(&mut locked.conn, &side_db, &admin, &marker_restoring(db.id))
                .await?;
            let check = super::backup_restore::Check::Full;
            let ms = super::backup_restore::restore_into_database(ctx, backup_id, &db, &inst, &side_db, check).await?;
            ctx.log("info", &format!("restored backup {backup_id} into {side_db} in {ms} ms; row counts match")).await;
            exec(
                &mut locked.conn,
                &format!("COMMENT ON DATABASE {} IS {}", side_db.pg_ident(), marker_restored(db.id, op).pg_literal()),
            )
            .await?;
        }

        ctx.step("swapping the restored database in").await;
        let current = comment_of(&mut locked.conn, &names.database).await?;
        if current.as_deref() == Some(&Marker::Database(db.id).text()) {
            super::delete::drain(ctx, &mut locked.conn, &names, grace.unwrap_or(s.engine.delete_grace)).await?;
            drop_ours(&mut locked.conn, &kept, db.id, &["dbaas:retained:"]).await?;
            rename(&mut locked.conn, &names.database, &kept).await?;
            exec(
                &mut locked.conn,
                &format!("COMMENT ON DATABASE {} IS {}", kept.pg_ident(), marker_retained(db.id, op).pg_literal()),
            )
            .await?;
        } else if current.is_some() {
            return Err(super::ownership::conflict(&[format!("database {} (not marked as ours)", names.database)]));
        }
        // The database's name is free now (renamed away by this or an earlier attempt).
        rename(&mut locked.conn, &side_db, &names.database).await?;
        exec(
            &mut locked.conn,
            &format!(
                "COMMENT ON DATABASE {} IS {}",
                names.database.pg_ident(),
                Marker::Database(db.id).text().pg_literal()
            ),
        )
        .await?;
        ctx.log("info", &format!("{} is the restored database; the previous one is kept as {kept}", names.database))
            .await;
    }
    drop(locked);
    // Privileges, the access model and extensions on the restored database, as provisioning
    // applies them (idempotent).
    super::provision::run(ctx, &[]).await
}

/// Drops the previous database an in-place restore kept (its time is up, or the database is
/// being deleted). Only a database marked as this database's retained copy.
pub async fn drop_retained(ctx: &OpContext) -> Result<(), OpError> {
    let s = &ctx.state;
    let (db, _inst, target) = record::for_operation(&s.db, &s.key, ctx.op.target_id).await?;
    let names = db.physical();
    let mut locked = Locked::database(&target, &names.database).await?;
    drop_copies(&mut locked.conn, &names, db.id).await?;
    ctx.log("info", &format!("dropped {} (kept since an in-place restore)", retained(&names))).await;
    Ok(())
}

/// Drops this database's retained copy and any side database left by a failed in-place
/// restore (a delete drops them with the database).
pub async fn drop_copies(conn: &mut PgConnection, names: &PhysicalNames, db: Uuid) -> Result<(), OpError> {
    drop_ours(conn, &retained(names), db, &["dbaas:retained:"]).await?;
    drop_ours(conn, &side(names), db, &["dbaas:restore:", "dbaas:restored:"]).await
}
