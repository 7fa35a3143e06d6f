//! Backing up one database (also as the first step of a delete), and what restoring a backup
//! shares with it (`super::backup_restore`): the stored row, the store, the admin login, the
//! libpq clients, the manifest's description of the tables.
//!
//! Backups and restores run as the database's own admin login (never the service's): `pg_dump` reads what the
//! tenant can read, and a restore runs whatever the dump holds (functions, triggers, index
//! expressions) with the tenant's privileges only. The dump is `pg_dump --format=custom`,
//! streamed through [`crate::backup::seal`] into the store, so it never sits whole in memory
//! or on local disk. Row counts for the manifest are taken in the snapshot the dump uses
//! (`pg_export_snapshot` + `--snapshot`), so they describe exactly what the dump holds.

use crate::catalog::conn::InstanceTarget;
use std::process::Stdio;

use dbaas_client::{Access, BackupManifest, CredentialKind, TableRows};
use sqlx::{Connection, PgConnection};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::conn::{exec, Locked};
use super::libpq::{self, Libpq};
use super::record::{self, CredentialRow, DatabaseRow};
use crate::operation::OpContext;
use dbaas_backup_store::seal::{self, DataKey};
use dbaas_backup_store::store::{LockMode, Retention, Store, StoreError};
use dbaas_engine::OpError;
use dbaas_store::backups::{self as rows, BackupRow};
use dbaas_store::instances::InstanceRow;
use dbaas_store::naming::PgQuote;

/// Everything a backup or a verification needs, loaded once.
pub(super) struct Loaded {
    pub(super) backup: BackupRow,
    pub(super) db: DatabaseRow,
    pub(super) inst: InstanceRow,
    pub(super) store: Store,
    /// Object Lock: the mode objects are written with (the date is the backup's).
    pub(super) lock_mode: Option<LockMode>,
    /// The admin login's password.
    pub(super) password: String,
}

pub(super) async fn load(ctx: &OpContext, backup: Uuid) -> Result<Loaded, OpError> {
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

pub(super) fn open_store(ctx: &OpContext, row: &rows::StoreRow) -> Result<Store, OpError> {
    Store::from_row(row, &ctx.state.key).map_err(|e| store_error("store_unusable", e))
}

/// A store's error as the operation's: unreachable is retried, the rest is reported.
pub(super) fn store_error(code: &'static str, e: StoreError) -> OpError {
    if e.is_transient() {
        OpError::retryable("store_unreachable", e.to_string())
    } else {
        OpError::permanent(code, e.to_string())
    }
}

pub(super) fn admin_credential(creds: &[CredentialRow]) -> Result<&CredentialRow, OpError> {
    creds
        .iter()
        .find(|c| c.kind == CredentialKind::Static && c.access() == Access::Admin)
        .ok_or_else(|| OpError::permanent("missing_credential", "no stored admin credential"))
}

/// A libpq client (`pg_dump`, `pg_restore`) connecting as `login` (user, password), with
/// the instance's TLS mode and CA and nothing else from this machine ([`super::libpq`]).
pub(super) fn client(program: &str, inst: &InstanceRow, login: (&str, &str), dbname: &str) -> Result<Libpq, OpError> {
    let mut c = libpq::command(
        std::path::Path::new(program),
        inst.into(),
        libpq::Login { user: login.0, password: login.1 },
        dbname,
        "dbaas-backup",
    )?;
    // pg_restore takes its database from the command line only (PGDATABASE is not read).
    c.cmd.arg("--dbname").arg(dbname);
    Ok(c)
}

/// Tables (not views, not partitioned parents) with their schema, as `schema.table` and
/// quoted, in a stable order.
pub(super) async fn tables(conn: &mut PgConnection) -> Result<Vec<(String, String)>, OpError> {
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
pub(super) enum Checksums<'a> {
    BelowLimit,
    As(&'a BackupManifest),
}

/// Row counts (and checksums) of every table, in the caller's snapshot.
pub(super) async fn describe(conn: &mut PgConnection, which: Checksums<'_>) -> Result<Vec<TableRows>, OpError> {
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
            // The row's text through the built-in output functions, never `t::text`: the
            // table's owner may define a cast of its row type to text (`CREATE CAST`), which
            // would run its own function in this session. The text is the same as the I/O
            // cast gives, so manifests taken either way compare equal.
            let sum: Option<String> = sqlx::query_scalar(&format!(
                "SELECT pg_catalog.md5(pg_catalog.string_agg(r.line, ',' ORDER BY r.line)) \
                 FROM (SELECT pg_catalog.textin(pg_catalog.record_out(t)) AS line FROM ONLY {quoted} t) r"
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
pub(super) async fn stderr_of(child: &mut tokio::process::Child) -> String {
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut text).await;
    }
    text.trim().chars().take(2000).collect()
}

pub async fn backup(ctx: &OpContext, backup_id: Uuid) -> Result<(), OpError> {
    backup_from(ctx, backup_id, None).await
}

/// A backup read from `server` instead of the database's instance: a point-in-time restore's
/// scratch cluster (a copy of the instance recovered to a time, on its own port).
pub async fn backup_from(ctx: &OpContext, backup_id: Uuid, server: Option<&InstanceRow>) -> Result<(), OpError> {
    let mut l = load(ctx, backup_id).await?;
    if let Some(server) = server {
        l.inst = server.clone();
    }
    let names = l.db.physical();
    let target = l.inst.target(&ctx.state.key)?;
    // What an interrupted repack left would be in the dump, and the dump would not restore.
    let mut svc = target.connect(&names.database).await?;
    let removed = super::service_extensions::remove(&mut svc, super::service_extensions::Scope::Marked).await;
    super::service_extensions::log(ctx, &removed).await;
    removed?;
    svc.close().await.ok();
    let mut maint = Locked::instance(&target).await?;
    let login = super::backup_login::open(&mut maint.conn, &names, l.db.id, None).await?;
    let result = dump(ctx, &l, &target, login.as_ref()).await;
    if login.is_some() {
        // The dump is stored either way: a login left open until its VALID UNTIL is logged,
        // not a failed backup.
        if let Err(e) = super::backup_login::close(&mut maint.conn, &names, l.db.id).await {
            ctx.log("warn", &format!("closing the backup login: {}", e.message)).await;
        }
    }
    result
}

/// `pg_dump` as the backup login (or, where the instance cannot have one, as the admin role),
/// sealed into the store, with the manifest read in the dump's snapshot.
async fn dump(
    ctx: &OpContext,
    l: &Loaded,
    target: &super::Target,
    login: Option<&super::backup_login::BackupLogin>,
) -> Result<(), OpError> {
    let names = l.db.physical();
    let admin = names.role(Access::Admin);
    let (user, password) = match login {
        Some(b) => (b.user.as_str(), b.password.as_str()),
        None => {
            ctx.log("warn", "the service's login is no superuser here: backing up as the admin role, which row security may hide rows from").await;
            (admin.as_str(), l.password.as_str())
        }
    };
    ctx.step(&format!("snapshot of {} as {user}", names.database)).await;
    let mut snap = target.as_login(user, password).connect(&names.database).await?;
    // Row security off: with BYPASSRLS nothing is hidden; without it, a table policies would
    // filter is an error rather than a silently partial count.
    exec(&mut snap, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL row_security = off").await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_catalog.pg_export_snapshot()").fetch_one(&mut snap).await?;
    let server_version: String =
        sqlx::query_scalar("SELECT pg_catalog.current_setting('server_version')").fetch_one(&mut snap).await?;
    // pg_dump writes every extension of the database: in this snapshot, these are the dump's.
    let blocked = super::service_extensions::unrestorable(&mut snap).await?;
    if !blocked.is_empty() {
        return Err(OpError::permanent(
            "backup_unrestorable",
            format!(
                "the database holds extension(s) {} that its admin role cannot create again (only a superuser can): \
                 a backup of it would not restore, so none is taken",
                blocked.join(", ")
            ),
        ));
    }

    let mut dump = client("pg_dump", &l.inst, (user, password), &names.database)?;
    dump.cmd.arg("--format=custom").arg("--snapshot").arg(&snapshot).stdout(Stdio::piped());
    let bin = libpq::bin_dir()?;
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
    let mut child = dump.cmd.spawn().map_err(|e| OpError::permanent("client_missing", format!("pg_dump: {e}")))?;
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

    #[test]
    fn majors_are_read_from_both_spellings() {
        assert_eq!(major("pg_dump (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"), Some(15));
        assert_eq!(major("16.2"), Some(16));
        assert_eq!(major("unknown (no such file)"), None);
    }
}
