//! Restoring a backup: `pg_restore` from the sealed object, a restore into a new database,
//! and the check of restored data against the backup's manifest. `pg_restore
//! --single-transaction` always runs as a tenant-level role (the target database's admin
//! role, or a drill's scratch login: `super::drill`), so nothing the dump holds runs with the
//! service's privileges.

use crate::catalog::conn::InstanceTarget;
use std::process::Stdio;
use std::time::Instant;

use dbaas_client::{Access, BackupManifest, BackupReason, BackupStatus, TableRows};
use sqlx::Connection;
use uuid::Uuid;

use super::backups::{admin_credential, client, describe, open_store, store_error, tables, Checksums};
use super::conn::{exec, Locked};
use super::record::{self, DatabaseRow};
use crate::operation::OpContext;
use dbaas_backup_store::seal::{self, DataKey};
use dbaas_backup_store::store::Store;
use dbaas_engine::OpError;
use dbaas_store::backups::{self as rows, BackupRow};
use dbaas_store::instances::InstanceRow;

/// How a restore is checked against the backup's manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Row counts and content checksums of every table: drills, and in-place restores before
    /// the swap. Reading every restored row once (and setting its hint bits) costs about a
    /// full read of the data.
    Full,
    /// The same tables exist (a catalog query). For a restore into a new database: the
    /// object's chunks are authenticated, its SHA-256 matches, and `pg_restore
    /// --single-transaction --exit-on-error` restored all of it or nothing, so the data is
    /// the dump's; drills check the rest.
    Tables,
}

/// Opens the sealed object into `pg_restore` running as `login` in `dbname`
/// (`--single-transaction`: all of it or nothing). The restore time in ms.
pub(super) async fn pg_restore_into(
    ctx: &OpContext,
    backup: &BackupRow,
    store: &Store,
    inst: &InstanceRow,
    login: (&str, &str),
    dbname: &str,
) -> Result<i64, OpError> {
    let started = Instant::now();
    let mut restore = client("pg_restore", inst, login, dbname)?;
    restore
        .cmd
        .args(["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    ctx.step(&format!("pg_restore into {dbname} as {}", login.0)).await;
    let mut child =
        restore.cmd.spawn().map_err(|e| OpError::permanent("client_missing", format!("pg_restore: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| OpError::permanent("io", "pg_restore has no stdin"))?;
    // pg_restore's own message, read while it runs: a failing pg_restore stops reading its
    // input, and what it said is the error to report (not the broken pipe that follows).
    let mut stderr = child.stderr.take();
    let said = async {
        let mut text = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = tokio::io::AsyncReadExt::read_to_string(e, &mut text).await;
        }
        text
    };
    let key = DataKey::unwrap_with(&ctx.state.key, &backup.data_key_enc, backup.id)
        .map_err(|e| OpError::permanent("backup_key", e.to_string()))?;
    let mut object = store
        .open(&backup.object_key, backup.object_version.as_deref())
        .await
        .map_err(|e| store_error("backup_missing", e))?;
    let broken_pipe = |e: &seal::SealError| e.to_string().to_lowercase().contains("broken pipe");
    let feeding = async {
        let opened = seal::open(&key, backup.id, &mut object, &mut stdin).await;
        if let Err(e) = &opened {
            if !broken_pipe(e) {
                // Killed before its input ends: pg_restore never commits what came before a
                // chunk that failed to open (a closed input would read as a complete dump).
                let _ = child.start_kill();
            }
        }
        drop(stdin);
        opened
    };
    let (opened, said) = tokio::join!(feeding, said);
    let pipe_broke = matches!(&opened, Err(e) if broken_pipe(e));
    let status = child.wait().await.map_err(|e| OpError::permanent("pg_restore_failed", e.to_string()))?;
    if let Err(e) = &opened {
        if !pipe_broke {
            return Err(OpError::permanent("verify_failed", format!("the stored backup does not open: {e}")));
        }
    }
    if !status.success() {
        let said: String = said.trim().chars().take(2000).collect();
        return Err(OpError::permanent("restore_failed", format!("pg_restore exited with {status}: {said}")));
    }
    let sha =
        opened.map_err(|e| OpError::permanent("verify_failed", format!("the stored backup does not open: {e}")))?;
    if backup.sha256.as_deref() != Some(sha.as_str()) {
        return Err(OpError::permanent("verify_failed", "the stored object's SHA-256 differs from the recorded one"));
    }
    Ok(started.elapsed().as_millis() as i64)
}

/// Checks what `dbname` holds against the manifest, reading as `reader` (a login that row
/// security hides nothing from, where the instance allows one).
pub(super) async fn check_against(
    ctx: &OpContext,
    manifest: &BackupManifest,
    inst: &InstanceRow,
    reader: (&str, &str),
    dbname: &str,
    check: Check,
) -> Result<(), OpError> {
    let checking = Instant::now();
    let target = inst.target(&ctx.state.key)?;
    let mut conn = target.as_login(reader.0, reader.1).connect(dbname).await?;
    match check {
        Check::Full => {
            // Read only, and row security off: a table row security would filter is an
            // error, never a short count.
            exec(&mut conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL row_security = off").await?;
            let restored = describe(&mut conn, Checksums::As(manifest)).await?;
            exec(&mut conn, "COMMIT").await?;
            compare(manifest, &restored)?;
        }
        Check::Tables => {
            let mut found: Vec<String> = tables(&mut conn).await?.into_iter().map(|(label, _)| label).collect();
            let mut want: Vec<String> = manifest.tables.iter().map(|t| t.table.clone()).collect();
            found.sort();
            want.sort();
            if found != want {
                return Err(OpError::permanent(
                    "verify_failed",
                    format!("the restored tables differ from the manifest's: {found:?} vs {want:?}"),
                ));
            }
        }
    }
    conn.close().await.ok();
    ctx.log("info", &format!("comparing with the manifest took {} ms", checking.elapsed().as_millis())).await;
    Ok(())
}

fn compare(manifest: &BackupManifest, restored: &[TableRows]) -> Result<(), OpError> {
    if restored == manifest.tables.as_slice() {
        return Ok(());
    }
    let mut diff: Vec<String> = Vec::new();
    for t in &manifest.tables {
        match restored.iter().find(|r| r.table == t.table) {
            None => diff.push(format!("{}: missing after the restore", t.table)),
            Some(r) if r.rows != t.rows => {
                diff.push(format!("{}: {} rows in the manifest, {} restored", t.table, t.rows, r.rows))
            }
            Some(r) if r.checksum != t.checksum => diff.push(format!("{}: content checksum differs", t.table)),
            Some(_) => {}
        }
    }
    for r in restored.iter().filter(|r| !manifest.tables.iter().any(|t| t.table == r.table)) {
        diff.push(format!("{}: not in the manifest", r.table));
    }
    Err(OpError::permanent(
        "verify_failed",
        format!("the restored data differs from the manifest: {}", diff.join("; ")),
    ))
}

/// Restores a succeeded backup of the database's tenant into `dbname` (the database itself,
/// or an in-place restore's side database) as the database's admin role, in one
/// transaction, then checks it against the manifest (a full check reads as the database's
/// backup login, which row security hides nothing from). The restore time in ms.
pub async fn restore_into_database(
    ctx: &OpContext,
    backup_id: Uuid,
    db: &DatabaseRow,
    inst: &InstanceRow,
    dbname: &str,
    check: Check,
) -> Result<i64, OpError> {
    let s = &ctx.state;
    let mut backup = rows::backup(&s.db, backup_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the backup record is gone"))?;
    if backup.reason == BackupReason::PointInTime && backup.status != BackupStatus::Succeeded {
        // Made on first use, by this restore: the database as it was at the time asked for.
        let make = s
            .point_in_time
            .ok_or_else(|| OpError::permanent("not_available", "this service cannot make point-in-time backups"))?;
        make(ctx, &backup).await?;
        backup = rows::backup(&s.db, backup_id)
            .await?
            .ok_or_else(|| OpError::permanent("not_found", "the backup record is gone"))?;
    }
    if db.tenant_id != backup.tenant_id {
        return Err(OpError::permanent("not_restorable", "the backup belongs to another tenant"));
    }
    let manifest = backup
        .manifest
        .as_ref()
        .map(|m| m.0.clone())
        .ok_or_else(|| OpError::permanent("not_restorable", "the backup has no manifest (it did not finish)"))?;
    let creds = record::credentials(&s.db, db.id).await?;
    let admin = admin_credential(&creds)?;
    let password = s.key.decrypt(&admin.password_enc, &admin.context())?;
    let names = db.physical();
    let role = names.role(Access::Admin);
    let store_row = rows::store(&s.db, backup.store_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the backup store is gone"))?;
    let store = open_store(ctx, &store_row)?;
    let ms = pg_restore_into(ctx, &backup, &store, inst, (&role, &password), dbname).await?;
    ctx.log("info", &format!("pg_restore took {ms} ms")).await;
    if check == Check::Tables {
        check_against(ctx, &manifest, inst, (&role, &password), dbname, check).await?;
        return Ok(ms);
    }
    let mut maint = Locked::instance(&inst.target(&s.key)?).await?;
    let login = super::backup_login::open(&mut maint.conn, &names, db.id, Some(dbname)).await?;
    let reader = login.as_ref().map_or((role.as_str(), password.as_str()), |b| (b.user.as_str(), b.password.as_str()));
    let checked = check_against(ctx, &manifest, inst, reader, dbname, check).await;
    if login.is_some() {
        super::backup_login::close(&mut maint.conn, &names, db.id).await?;
    }
    checked.map(|()| ms)
}

/// Fills a new database (the operation's target, just provisioned) from a backup of the same
/// tenant, then applies the access model to what the restore created. The restore is one
/// transaction: a retried operation finds the database either empty (restores) or complete
/// (skips).
pub async fn restore_into(ctx: &OpContext, backup_id: Uuid) -> Result<(), OpError> {
    let s = &ctx.state;
    let (db, inst, target) = record::for_operation(&s.db, &s.key, ctx.op.target_id).await?;
    let creds = record::credentials(&s.db, db.id).await?;
    let admin = admin_credential(&creds)?;
    let password = s.key.decrypt(&admin.password_enc, &admin.context())?;
    let names = db.physical();
    let mut conn = target.as_login(&names.role(Access::Admin), &password).connect(&names.database).await?;
    let already = !tables(&mut conn).await?.is_empty();
    conn.close().await.ok();
    if already {
        ctx.log("info", "the database already holds the restored tables (an earlier attempt finished the restore)")
            .await;
    } else {
        let ms = restore_into_database(ctx, backup_id, &db, &inst, &names.database, Check::Tables).await?;
        ctx.log("info", &format!("restored backup {backup_id} in {ms} ms; its tables match the manifest")).await;
    }
    ctx.step("access model on the restored objects (as the database's admin role)").await;
    let mut conn = super::tenant_session::connect(&target, &s.key, &db, &creds).await?;
    super::provision::apply_access_model(&mut conn, &names).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(tables: Vec<TableRows>) -> BackupManifest {
        BackupManifest {
            database: "orders".into(),
            server_version: "15".into(),
            pg_dump_version: "15".into(),
            format: "custom".into(),
            tables,
        }
    }

    fn t(name: &str, rows: i64, sum: Option<&str>) -> TableRows {
        TableRows { table: name.into(), rows, checksum: sum.map(str::to_string) }
    }

    #[test]
    fn restored_data_is_compared_by_rows_and_content() {
        let m = manifest(vec![t("public.a", 3, Some("x")), t("public.big", 10, None)]);
        assert!(compare(&m, &[t("public.a", 3, Some("x")), t("public.big", 10, None)]).is_ok());
        let e = compare(&m, &[t("public.a", 3, Some("y")), t("public.big", 10, None)]).unwrap_err();
        assert!(e.message.contains("public.a: content checksum differs"), "{}", e.message);
        let e = compare(&m, &[t("public.a", 2, Some("x")), t("public.big", 10, None)]).unwrap_err();
        assert!(e.message.contains("3 rows in the manifest, 2 restored"), "{}", e.message);
        let e = compare(&m, &[t("public.a", 3, Some("x"))]).unwrap_err();
        assert!(e.message.contains("public.big: missing"), "{}", e.message);
        let e = compare(&m, &[t("public.a", 3, Some("x")), t("public.big", 10, None), t("public.new", 0, None)]);
        assert!(e.unwrap_err().message.contains("public.new: not in the manifest"));
    }
}
