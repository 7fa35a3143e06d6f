//! In-place restore: the backup is restored into a side database `<physical>_restore` (as the
//! database's own admin role, one transaction), its row counts checked against the manifest,
//! and only then swapped in: CONNECT revoked, sessions given the grace period then
//! terminated, the current database renamed to `<physical>_retained` and the side database
//! to the database's name. The previous database stays as `<physical>_retained` until the
//! record's `retained_until` (until then [`undo`] swaps it back: `POST
//! /v1/databases/{id}/restore/undo`), then the backup lifecycle drops it. Physical names contain no `_`, so these names are
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
use crate::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_store::naming::{Marker, PgQuote, PhysicalNames};

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

/// `<physical>_undo`: the restored database on its way to becoming the kept copy while an
/// undo swaps the previous one back.
fn undoing(names: &PhysicalNames) -> String {
    format!("{}_undo", names.database)
}

fn marker_undoing(db: Uuid, op: Uuid) -> String {
    format!("dbaas:undo:{db}:{op}")
}

async fn comment_of(conn: &mut PgConnection, name: &str) -> Result<Option<String>, OpError> {
    super::ownership::database_comment(conn, name).await
}

/// Drops `name` if its marker says it is one of this database's side or retained copies.
async fn drop_ours(conn: &mut PgConnection, name: &str, db: Uuid, prefixes: &[&str]) -> Result<(), OpError> {
    let ours = |c: &str| prefixes.iter().any(|p| c.starts_with(&format!("{p}{db}")));
    super::ownership::drop_marked_database(conn, name, ours, "marked as this database's copy").await
}

/// Renames database `from` to `to` and marks it `marker`, in one transaction (so a crash
/// never leaves a renamed database with its old marker), retried while terminated sessions
/// are still going away.
async fn rename(conn: &mut PgConnection, from: &str, to: &str, marker: &str) -> Result<(), OpError> {
    let sql = format!(
        "BEGIN; ALTER DATABASE {} RENAME TO {}; COMMENT ON DATABASE {} IS {}; COMMIT",
        from.pg_ident(),
        to.pg_ident(),
        to.pg_ident(),
        marker.pg_literal()
    );
    let mut tries = 0;
    loop {
        match exec(conn, &sql).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let _ = exec(conn, "ROLLBACK").await;
                if tries < 40 && e.code == "55006" {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                } else {
                    return Err(e);
                }
            }
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
            let restored =
                super::backup_restore::restore_into_database(ctx, backup_id, &db, &inst, &side_db, check).await;
            let ms = match restored {
                Ok(ms) => ms,
                Err(e) => {
                    // Nothing was swapped: the database stays as it was, and the side copy goes.
                    drop_ours(&mut locked.conn, &side_db, db.id, &["dbaas:restore:", "dbaas:restored:"]).await?;
                    ctx.log("error", &format!("the restore failed; {side_db} dropped, {} untouched", names.database))
                        .await;
                    return Err(e);
                }
            };
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
            rename(&mut locked.conn, &names.database, &kept, &marker_retained(db.id, op)).await?;
        } else if current.is_some() {
            return Err(super::ownership::conflict(&[format!("database {} (not marked as ours)", names.database)]));
        }
        // The database's name is free now (renamed away by this or an earlier attempt).
        rename(&mut locked.conn, &side_db, &names.database, &Marker::Database(db.id).text()).await?;
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
    // Only the kept copy: an `_undo` copy is the restored data of an undo that has not
    // finished, dropped only with the database.
    drop_ours(&mut locked.conn, &retained(&names), db.id, &["dbaas:retained:"]).await?;
    ctx.log("info", &format!("dropped {} (kept since an in-place restore)", retained(&names))).await;
    Ok(())
}

/// Drops this database's retained copy and any side database left by a failed in-place
/// restore or an interrupted undo (a delete drops them with the database).
pub async fn drop_copies(conn: &mut PgConnection, names: &PhysicalNames, db: Uuid) -> Result<(), OpError> {
    drop_ours(conn, &retained(names), db, &["dbaas:retained:"]).await?;
    drop_ours(conn, &undoing(names), db, &["dbaas:undo:"]).await?;
    drop_ours(conn, &side(names), db, &["dbaas:restore:", "dbaas:restored:"]).await
}

/// Undoes an in-place restore while the previous database is kept: the restored database
/// steps aside (`<physical>_undo`), the kept one takes the database's name back, and the
/// restored one becomes the kept copy, until the same time (so an undo can itself be undone).
/// Every step reads the markers first: an attempt killed anywhere resumes where it stopped.
pub async fn undo(ctx: &OpContext, grace: Option<Duration>) -> Result<(), OpError> {
    let s = &ctx.state;
    let (db, _inst, target) = record::for_operation(&s.db, &s.key, ctx.op.target_id).await?;
    let names = db.physical();
    let (kept, aside, op) = (retained(&names), undoing(&names), ctx.op.id);
    let ours = Marker::Database(db.id).text();
    let kept_prefix = format!("dbaas:retained:{}:", db.id);
    let mut locked = Locked::database(&target, &names.database).await?;
    let c = &mut locked.conn;
    if comment_of(c, &kept).await?.as_deref() == Some(&marker_retained(db.id, op)) {
        ctx.log("info", "an earlier attempt already swapped the previous database back").await;
    } else {
        if comment_of(c, &aside).await?.as_deref() != Some(&marker_undoing(db.id, op)) {
            ctx.step(&format!("moving the restored {} aside", names.database)).await;
            if !comment_of(c, &kept).await?.is_some_and(|k| k.starts_with(&kept_prefix)) {
                return Err(OpError::permanent(
                    "nothing_to_undo",
                    format!("no previous database of {} is kept (its time is up, or it was dropped)", db.name),
                ));
            }
            match comment_of(c, &names.database).await? {
                Some(cur) if cur == ours => {}
                Some(_) => {
                    return Err(super::ownership::conflict(&[format!(
                        "database {} (not marked as ours)",
                        names.database
                    )]))
                }
                None => return Err(OpError::permanent("not_found", format!("database {} is missing", names.database))),
            }
            super::delete::drain(ctx, c, &names, grace.unwrap_or(s.engine.delete_grace)).await?;
            drop_ours(c, &aside, db.id, &["dbaas:undo:"]).await?;
            rename(c, &names.database, &aside, &marker_undoing(db.id, op)).await?;
        }
        match comment_of(c, &names.database).await? {
            None => {
                ctx.step(&format!("{kept} takes the name {} back", names.database)).await;
                rename(c, &kept, &names.database, &ours).await?;
            }
            Some(cur) if cur == ours => {}
            Some(_) => {
                return Err(super::ownership::conflict(&[format!("database {} (not marked as ours)", names.database)]))
            }
        }
        // The restore's drain took CONNECT from its owner too (idempotent; provisioning below
        // gives the other roles theirs back).
        let owner = names.role(dbaas_client::Access::Admin);
        exec(c, &format!("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}", names.database.pg_ident(), owner.pg_ident()))
            .await?;
        ctx.step(&format!("the restored database is kept as {kept}")).await;
        rename(c, &aside, &kept, &marker_retained(db.id, op)).await?;
        ctx.log("info", &format!("{} is the database from before the restore again", names.database)).await;
    }
    drop(locked);
    // CONNECT, privileges and the access model, as provisioning applies them (idempotent).
    super::provision::run(ctx, &[]).await
}
