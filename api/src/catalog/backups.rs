//! Backing up one database and verifying a backup by restoring it.
//!
//! Both run as the database's own admin login (never the service's): `pg_dump` reads what the
//! tenant can read, and a restore runs whatever the dump holds (functions, triggers, index
//! expressions) with the tenant's privileges only. The dump is `pg_dump --format=custom`,
//! streamed through [`crate::backup::seal`] into the store, so it never sits whole in memory
//! or on local disk. Row counts for the manifest are taken in the snapshot the dump uses
//! (`pg_export_snapshot` + `--snapshot`), so they describe exactly what the dump holds.
//!
//! A verification restores into a scratch database `<physical name>_verify` (injective: names
//! cannot contain `_`), marked as ours, owned by the tenant's admin role, then compares row
//! counts with the manifest and drops it.

use std::process::Stdio;
use std::time::Instant;

use dbaas_client::{Access, BackupManifest, CredentialKind, TableRows};
use sqlx::{Connection, PgConnection};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::conn::{exec, Locked};
use super::record::{self, CredentialRow, DatabaseRow};
use crate::backup::seal::{self, DataKey};
use crate::backup::store::{LockMode, Retention, Store, StoreError};
use crate::naming::PgQuote;
use crate::ops::runner::OpContext;
use crate::ops::OpError;
use crate::store::backups::{self as rows, BackupRow};
use crate::store::instances::InstanceRow;

/// Everything a backup or a verification needs, loaded once.
struct Loaded {
    backup: BackupRow,
    db: DatabaseRow,
    inst: InstanceRow,
    store: Store,
    /// Object Lock: the mode objects are written with (the date is the backup's).
    lock_mode: Option<LockMode>,
    /// The admin login's password.
    password: String,
}

async fn load(ctx: &OpContext, backup: Uuid) -> Result<Loaded, OpError> {
    let s = &ctx.state;
    let backup = rows::backup(&s.db, backup)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the backup record is gone"))?;
    let (db, inst, _) = record::for_operation(&s.db, &s.key, backup.database_id).await?;
    let creds = record::credentials(&s.db, db.id).await?;
    let admin = admin_credential(&creds)?;
    let password = s.key.decrypt(&admin.password_enc, &admin.context())?;
    let store_row = rows::store(&s.db, backup.store_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the backup store is gone"))?;
    let store = open_store(ctx, &store_row)?;
    let lock_mode = store_row.object_lock().map(|l| match l.mode {
        dbaas_client::ObjectLockMode::Governance => LockMode::Governance,
        dbaas_client::ObjectLockMode::Compliance => LockMode::Compliance,
    });
    Ok(Loaded { backup, db, inst, store, lock_mode, password })
}

fn open_store(ctx: &OpContext, row: &rows::StoreRow) -> Result<Store, OpError> {
    Store::from_row(row, &ctx.state.key).map_err(|e| store_error("store_unusable", e))
}

/// A store's error as the operation's: unreachable is retried, the rest is reported.
fn store_error(code: &'static str, e: StoreError) -> OpError {
    if e.is_transient() {
        OpError::retryable("store_unreachable", e.to_string())
    } else {
        OpError::permanent(code, e.to_string())
    }
}

fn admin_credential(creds: &[CredentialRow]) -> Result<&CredentialRow, OpError> {
    creds
        .iter()
        .find(|c| c.kind == CredentialKind::Static && c.access() == Access::Admin)
        .ok_or_else(|| OpError::permanent("missing_credential", "no stored admin credential"))
}

/// A libpq client (`pg_dump`, `pg_restore`) connecting as the database's admin role, with
/// the instance's TLS mode and CA; arguments as a vector, never through a shell.
fn client(
    program: &str,
    inst: &InstanceRow,
    login: (&str, &str),
    dbname: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<tokio::process::Command, OpError> {
    let bin = crate::pgcluster::find_bin_dir().map_err(|e| OpError::permanent("client_missing", e.to_string()))?;
    let mut cmd = tokio::process::Command::new(bin.join(program));
    cmd.arg("--host")
        .arg(&inst.host)
        .arg("--port")
        .arg(inst.port.to_string())
        .arg("--username")
        .arg(login.0)
        .arg("--dbname")
        .arg(dbname)
        .env("PGPASSWORD", login.1)
        .env("PGSSLMODE", inst.sslmode.as_str())
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGAPPNAME", "dbaas-backup")
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ca) = ca_file {
        cmd.env("PGSSLROOTCERT", ca);
    }
    Ok(cmd)
}

/// The instance's CA in a private file for libpq (kept as long as the returned handle).
fn ca_file(inst: &InstanceRow) -> Result<Option<tempfile::NamedTempFile>, OpError> {
    let Some(pem) = &inst.ca_cert else { return Ok(None) };
    let mut f = tempfile::NamedTempFile::new().map_err(|e| OpError::retryable("io", e.to_string()))?;
    std::io::Write::write_all(&mut f, pem.as_bytes()).map_err(|e| OpError::retryable("io", e.to_string()))?;
    Ok(Some(f))
}

/// Tables (not views, not partitioned parents) with their schema, as `schema.table` and
/// quoted, in a stable order.
async fn tables(conn: &mut PgConnection) -> Result<Vec<(String, String)>, OpError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.relkind OPERATOR(pg_catalog.=) 'r' AND n.nspname OPERATOR(pg_catalog.!~) '^pg_' \
           AND n.nspname OPERATOR(pg_catalog.<>) 'information_schema' ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(s, t)| (format!("{s}.{t}"), format!("{}.{}", s.pg_ident(), t.pg_ident()))).collect())
}

/// Tables up to this size also get a content checksum in the manifest (reading a table
/// whole to hash it is what bounds it).
const CHECKSUM_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Which tables to checksum: by size when backing up, as the manifest did when checking.
enum Checksums<'a> {
    BelowLimit,
    As(&'a BackupManifest),
}

/// Row counts (and checksums) of every table, in the caller's snapshot.
async fn describe(conn: &mut PgConnection, which: Checksums<'_>) -> Result<Vec<TableRows>, OpError> {
    let mut out = Vec::new();
    for (label, quoted) in tables(conn).await? {
        let rows: i64 =
            sqlx::query_scalar(&format!("SELECT pg_catalog.count(*) FROM ONLY {quoted}")).fetch_one(&mut *conn).await?;
        let wanted = match &which {
            Checksums::BelowLimit => {
                let size: i64 = sqlx::query_scalar(&format!(
                    "SELECT pg_catalog.pg_total_relation_size({}::pg_catalog.regclass)",
                    quoted.pg_literal()
                ))
                .fetch_one(&mut *conn)
                .await?;
                size <= CHECKSUM_LIMIT_BYTES
            }
            Checksums::As(m) => m.tables.iter().any(|t| t.table == label && t.checksum.is_some()),
        };
        let checksum = if wanted {
            let sum: Option<String> = sqlx::query_scalar(&format!(
                "SELECT pg_catalog.md5(pg_catalog.string_agg(t::text, ',' ORDER BY t::text)) FROM ONLY {quoted} t"
            ))
            .fetch_one(&mut *conn)
            .await?;
            // An empty table hashes as the empty string.
            Some(sum.unwrap_or_else(|| "d41d8cd98f00b204e9800998ecf8427e".into()))
        } else {
            None
        };
        out.push(TableRows { table: label, rows, checksum });
    }
    Ok(out)
}

async fn version(program: &std::path::Path) -> String {
    match tokio::process::Command::new(program).arg("--version").output().await {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// The major version in `15.8 (Debian …)` or `pg_dump (PostgreSQL) 15.8`.
fn major(text: &str) -> Option<u32> {
    let word = text.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    word.split('.').next()?.parse().ok()
}

/// Reads a child's stderr to the end (its message when it fails).
async fn stderr_of(child: &mut tokio::process::Child) -> String {
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut text).await;
    }
    text.trim().chars().take(2000).collect()
}

pub async fn backup(ctx: &OpContext, backup_id: Uuid) -> Result<(), OpError> {
    let l = load(ctx, backup_id).await?;
    let names = l.db.physical();
    let target = l.inst.target(&ctx.state.key)?;
    ctx.step(&format!("snapshot of {} as {}", names.database, names.role(Access::Admin))).await;
    let mut snap = target.as_login(&names.role(Access::Admin), &l.password).connect(&names.database).await?;
    exec(&mut snap, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_catalog.pg_export_snapshot()").fetch_one(&mut snap).await?;
    let server_version: String =
        sqlx::query_scalar("SELECT pg_catalog.current_setting('server_version')").fetch_one(&mut snap).await?;

    let ca = ca_file(&l.inst)?;
    let admin = names.role(Access::Admin);
    let mut cmd = client("pg_dump", &l.inst, (&admin, &l.password), &names.database, ca.as_ref().map(|f| f.path()))?;
    cmd.arg("--format=custom").arg("--snapshot").arg(&snapshot).stdin(Stdio::null()).stdout(Stdio::piped());
    let bin = crate::pgcluster::find_bin_dir().map_err(|e| OpError::permanent("client_missing", e.to_string()))?;
    let pg_dump_version = version(&bin.join("pg_dump")).await;
    // pg_dump refuses (or worse, misreads) a newer server: say so before starting.
    if let (Some(client), Some(server)) = (major(&pg_dump_version), major(&server_version)) {
        if client < server {
            return Err(OpError::permanent(
                "pg_dump_too_old",
                format!(
                    "pg_dump {client} cannot dump a PostgreSQL {server} server; install PostgreSQL {server}'s client"
                ),
            ));
        }
    }
    ctx.step(&format!("pg_dump (custom format) sealed into store {}", l.backup.store_name)).await;
    let mut child = cmd.spawn().map_err(|e| OpError::permanent("client_missing", format!("pg_dump: {e}")))?;
    let mut stdout = child.stdout.take().ok_or_else(|| OpError::permanent("io", "pg_dump has no stdout"))?;
    let key = DataKey::unwrap_with(&ctx.state.key, &l.backup.data_key_enc, l.backup.id)
        .map_err(|e| OpError::permanent("backup_key", e.to_string()))?;
    let retention = match (l.lock_mode, l.backup.locked_until) {
        (Some(mode), Some(until)) => Some(Retention { mode, until }),
        _ => None,
    };
    let mut upload =
        l.store.upload(&l.backup.object_key, retention).await.map_err(|e| store_error("store_unusable", e))?;
    // Progress in the operation's log every 10 s: bytes stored so far. The manifest's row
    // counts and checksums are read in the same snapshot while pg_dump streams.
    let written = std::sync::atomic::AtomicU64::new(0);
    let sealing = async {
        let mut counted = Counting { inner: upload.writer(), written: &written };
        let sealing = seal::seal(&key, l.backup.id, &mut stdout, &mut counted);
        tokio::pin!(sealing);
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(10),
        );
        loop {
            tokio::select! {
                r = &mut sealing => break r,
                _ = tick.tick() => {
                    let n = written.load(std::sync::atomic::Ordering::Relaxed);
                    ctx.log("info", &format!("{:.1} MiB stored so far", n as f64 / 1048576.0)).await;
                }
            }
        }
    };
    let (tables, sealed) = tokio::join!(describe(&mut snap, Checksums::BelowLimit), sealing);
    let tables = tables?;
    let summed = tables.iter().filter(|t| t.checksum.is_some()).count();
    ctx.log("info", &format!("{} tables counted ({summed} checksummed) in snapshot {snapshot}", tables.len())).await;
    let status = child.wait().await.map_err(|e| OpError::retryable("pg_dump_failed", e.to_string()))?;
    if !status.success() {
        let err = stderr_of(&mut child).await;
        return Err(OpError::retryable("pg_dump_failed", format!("pg_dump exited with {status}: {err}")));
    }
    let sealed = sealed.map_err(|e| OpError::retryable("store_write_failed", e.to_string()))?;
    // The object becomes visible only now, complete; the snapshot may end.
    let version = upload.commit().await.map_err(|e| store_error("store_write_failed", e))?;
    snap.close().await.ok();
    let manifest = BackupManifest {
        database: l.db.name.clone(),
        server_version,
        pg_dump_version,
        format: "custom".into(),
        tables,
    };
    sqlx::query(
        "UPDATE backups SET size_bytes = $2, dump_bytes = $3, sha256 = $4, manifest = $5, object_version = $6 WHERE id = $1",
    )
    .bind(l.backup.id)
    .bind(sealed.stored_bytes as i64)
    .bind(sealed.plain_bytes as i64)
    .bind(&sealed.sha256)
    .bind(sqlx::types::Json(&manifest))
    .bind(version)
    .execute(&ctx.state.db)
    .await?;
    ctx.log(
        "info",
        &format!("stored {} bytes (dump {} bytes), sha256 {}", sealed.stored_bytes, sealed.plain_bytes, sealed.sha256),
    )
    .await;
    Ok(())
}

/// `<physical name>_verify`, and the marker that makes it ours.
fn scratch(db: &DatabaseRow, backup: Uuid) -> (String, String) {
    (format!("{}_verify", db.physical().database), format!("dbaas:verify:{backup}"))
}

/// Drops the scratch database if it is ours; refuses to touch one that is not.
async fn drop_scratch(conn: &mut PgConnection, name: &str) -> Result<(), OpError> {
    // Any verification's scratch copy of this database is ours to replace.
    super::ownership::drop_marked_database(
        conn,
        name,
        |c| c.starts_with("dbaas:verify:"),
        "a dbaas verification database",
    )
    .await
}

pub async fn cleanup_verify(ctx: &OpContext, backup_id: Uuid) -> Result<(), OpError> {
    let l = load(ctx, backup_id).await?;
    let (name, _) = scratch(&l.db, backup_id);
    let mut locked = Locked::instance(&l.inst.target(&ctx.state.key)?).await?;
    drop_scratch(&mut locked.conn, &name).await
}

pub async fn verify(ctx: &OpContext, backup_id: Uuid) -> Result<(), OpError> {
    let l = load(ctx, backup_id).await?;
    let manifest = l
        .backup
        .manifest
        .as_ref()
        .map(|m| m.0.clone())
        .ok_or_else(|| OpError::permanent("not_verifiable", "the backup has no manifest (it did not finish)"))?;
    let names = l.db.physical();
    let target = l.inst.target(&ctx.state.key)?;
    let (scratch_db, marker) = scratch(&l.db, backup_id);
    ctx.step(&format!("scratch database {scratch_db}")).await;
    let mut locked = Locked::instance(&target).await?;
    drop_scratch(&mut locked.conn, &scratch_db).await?;
    let sdb = scratch_db.pg_ident();
    exec(
        &mut locked.conn,
        &format!(
            "CREATE DATABASE {sdb} WITH OWNER {} TEMPLATE template0 ENCODING 'UTF8'",
            names.role(Access::Admin).pg_ident()
        ),
    )
    .await?;
    exec(&mut locked.conn, &format!("COMMENT ON DATABASE {sdb} IS {}", marker.pg_literal())).await?;
    exec(&mut locked.conn, &format!("REVOKE ALL ON DATABASE {sdb} FROM PUBLIC")).await?;

    let admin = names.role(Access::Admin);
    let result = restore_and_compare(
        ctx,
        &l.backup,
        &l.store,
        &manifest,
        &l.inst,
        (&admin, &l.password),
        &scratch_db,
        Check::Full,
    )
    .await;
    drop_scratch(&mut locked.conn, &scratch_db).await?;
    let (status, message, restore_ms) = match &result {
        Ok(ms) => {
            let summed = manifest.tables.iter().filter(|t| t.checksum.is_some()).count();
            let msg = format!(
                "{} tables: row counts and {summed} content checksums match the manifest",
                manifest.tables.len()
            );
            ("passed", msg, Some(*ms))
        }
        Err(e) => ("failed", e.message.clone(), None),
    };
    sqlx::query(
        "UPDATE backups SET verify_status = $2, verify_message = $3, verified_at = now(), \
         restore_ms = coalesce($4, restore_ms) WHERE id = $1",
    )
    .bind(backup_id)
    .bind(status)
    .bind(&message)
    .bind(restore_ms)
    .execute(&ctx.state.db)
    .await?;
    ctx.log(if result.is_ok() { "info" } else { "error" }, &format!("verification {status}: {message}")).await;
    result.map(|_| ())
}

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

/// Opens the sealed object into `pg_restore` running as `login` in `dbname` (`--single-transaction`:
/// all of it or nothing), then checks it against the manifest. The restore time in ms.
#[allow(clippy::too_many_arguments)]
async fn restore_and_compare(
    ctx: &OpContext,
    backup: &BackupRow,
    store: &Store,
    manifest: &BackupManifest,
    inst: &InstanceRow,
    login: (&str, &str),
    dbname: &str,
    check: Check,
) -> Result<i64, OpError> {
    let started = Instant::now();
    let ca = ca_file(inst)?;
    let mut cmd = client("pg_restore", inst, login, dbname, ca.as_ref().map(|f| f.path()))?;
    cmd.args(["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    ctx.step(&format!("pg_restore into {dbname} as {}", login.0)).await;
    let mut child = cmd.spawn().map_err(|e| OpError::permanent("client_missing", format!("pg_restore: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| OpError::permanent("io", "pg_restore has no stdin"))?;
    let key = DataKey::unwrap_with(&ctx.state.key, &backup.data_key_enc, backup.id)
        .map_err(|e| OpError::permanent("backup_key", e.to_string()))?;
    let mut object = store
        .open(&backup.object_key, backup.object_version.as_deref())
        .await
        .map_err(|e| store_error("backup_missing", e))?;
    let opened = seal::open(&key, backup.id, &mut object, &mut stdin).await;
    if opened.is_err() {
        // Never let pg_restore commit what came before a chunk that failed to open.
        let _ = child.start_kill();
    }
    drop(stdin);
    let status = child.wait().await.map_err(|e| OpError::permanent("pg_restore_failed", e.to_string()))?;
    let sha =
        opened.map_err(|e| OpError::permanent("verify_failed", format!("the stored backup does not open: {e}")))?;
    if backup.sha256.as_deref() != Some(sha.as_str()) {
        return Err(OpError::permanent("verify_failed", "the stored object's SHA-256 differs from the recorded one"));
    }
    if !status.success() {
        let err = stderr_of(&mut child).await;
        return Err(OpError::permanent("restore_failed", format!("pg_restore exited with {status}: {err}")));
    }
    let restore_ms = started.elapsed().as_millis() as i64;
    let checking = Instant::now();
    let target = inst.target(&ctx.state.key)?;
    let mut conn = target.as_login(login.0, login.1).connect(dbname).await?;
    match check {
        Check::Full => {
            let restored = describe(&mut conn, Checksums::As(manifest)).await?;
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
    ctx.log(
        "info",
        &format!(
            "pg_restore took {restore_ms} ms; comparing with the manifest took {} ms",
            checking.elapsed().as_millis()
        ),
    )
    .await;
    Ok(restore_ms)
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
/// transaction, then checks row counts against the manifest. The restore time in ms.
pub async fn restore_into_database(
    ctx: &OpContext,
    backup_id: Uuid,
    db: &DatabaseRow,
    inst: &InstanceRow,
    dbname: &str,
    check: Check,
) -> Result<i64, OpError> {
    let s = &ctx.state;
    let backup = rows::backup(&s.db, backup_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the backup record is gone"))?;
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
    let role = db.physical().role(Access::Admin);
    let store_row = rows::store(&s.db, backup.store_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the backup store is gone"))?;
    let store = open_store(ctx, &store_row)?;
    restore_and_compare(ctx, &backup, &store, &manifest, inst, (&role, &password), dbname, check).await
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

/// The backup a delete takes before dropping anything: taken once (a retried delete finds it
/// succeeded), then recorded as good right away, before the drop begins.
pub async fn final_backup(ctx: &OpContext, backup_id: Uuid) -> Result<(), OpError> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM backups WHERE id = $1")
        .bind(backup_id)
        .fetch_optional(&ctx.state.db)
        .await?;
    match status.as_deref() {
        Some("succeeded") => {
            ctx.log("info", &format!("final backup {backup_id} already taken")).await;
            return Ok(());
        }
        Some("running") => {}
        _ => return Err(OpError::permanent("final_backup_failed", "the final backup is not usable; delete again")),
    }
    ctx.step(&format!("final backup {backup_id} before dropping")).await;
    backup(ctx, backup_id).await?;
    sqlx::query("UPDATE backups SET status = 'succeeded', finished_at = now() WHERE id = $1 AND status = 'running'")
        .bind(backup_id)
        .execute(&ctx.state.db)
        .await?;
    Ok(())
}

/// Counts the bytes written through it (the backup's progress).
struct Counting<'a, W: ?Sized> {
    inner: &'a mut W,
    written: &'a std::sync::atomic::AtomicU64,
}

impl<W: tokio::io::AsyncWrite + Unpin + ?Sized> tokio::io::AsyncWrite for Counting<'_, W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut *self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
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
    fn majors_are_read_from_both_spellings() {
        assert_eq!(major("pg_dump (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"), Some(15));
        assert_eq!(major("16.2"), Some(16));
        assert_eq!(major("unknown (no such file)"), None);
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
