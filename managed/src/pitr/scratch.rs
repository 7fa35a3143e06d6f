//! A database as it was at a point in time: the instance's repository restored to that time
//! into a scratch cluster on the same host, the one database dumped from it into its
//! point-in-time backup, the scratch cluster removed. The restore then goes on with that
//! backup like any other (manifest checks, the in-place swap, the kept previous copy), and
//! the live cluster and its other databases are never touched.
//!
//! The scratch cluster is `<data_root>/.pitr-<backup id>` (instance directories start with a
//! letter, so the name is nobody else's), listens on a free port of the host's range, takes
//! logins only for the service and the database's backup login (its `pg_hba.conf` is
//! replaced: credentials revoked since that time must not open it), has its own pgBackRest
//! configuration (its own lock and log paths, synchronous `archive-get`, archiving off), and
//! is removed whatever happens. An attempt cut short leaves a directory the next attempt
//! removes first.
//!
//! A target later than the archive's last commit but inside the window (see
//! [`super::window`]) is the archive's end: PostgreSQL stops with "recovery ended before
//! configured recovery target was reached", and recovery is then let run to the end.

use std::time::{Duration, Instant};

use dbaas_client::ArchivingState;
use dbaas_domain::catalog::conn::InstanceRow;
use dbaas_domain::catalog::record::load_instance;
use dbaas_domain::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_hosts::executor::ExecError;
use dbaas_store::backups::BackupRow;
use uuid::Uuid;

use super::config::{self, Paths};
use crate::node::Node;
use crate::SERVICE_ADMIN;

/// What [`dbaas_domain::state::AppState::point_in_time`] calls.
pub fn hook<'a>(
    ctx: &'a OpContext,
    backup: &'a BackupRow,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), OpError>> + Send + 'a>> {
    Box::pin(materialize(ctx, backup))
}

/// The scratch cluster's directory for a backup.
pub fn scratch_dir(data_root: &str, backup: Uuid) -> String {
    format!("{data_root}/.pitr-{}", backup.simple())
}

const NOT_REACHED: &str = "recovery ended before configured recovery target was reached";

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
    let live = crate::ops::node_of(s, &inst).await?;
    let port = free_port(ctx, &live).await?;
    let scratch = Node {
        exec: live.exec.clone(),
        host: live.host.clone(),
        name: live.name.clone(),
        port,
        dir: scratch_dir(&live.host.data_root, backup.id),
        bin: live.bin.clone(),
    };
    remove(&scratch).await?;
    let started = Instant::now();
    let made = make(ctx, &inst, &live, &scratch, backup, target, &db.physical_name).await;
    let removed = remove(&scratch).await;
    if let Err(e) = &removed {
        ctx.log("warn", &format!("removing the scratch cluster {}: {e}", scratch.dir)).await;
    }
    made?;
    sqlx::query("UPDATE backups SET status = 'succeeded', finished_at = now(), error = NULL WHERE id = $1")
        .bind(backup.id)
        .execute(&s.db)
        .await?;
    ctx.log("info", &format!("point-in-time backup made in {} ms; scratch cluster removed", started.elapsed().as_millis()))
        .await;
    Ok(())
}

async fn make(
    ctx: &OpContext,
    inst: &InstanceRow,
    live: &Node,
    scratch: &Node,
    backup: &BackupRow,
    target: chrono::DateTime<chrono::Utc>,
    physical: &str,
) -> Result<(), OpError> {
    let s = &ctx.state;
    let when = target.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    ctx.step(&format!("scratch cluster {} on port {}: restoring the instance to {when}", scratch.dir, scratch.port)).await;
    for dir in [scratch.dir.clone(), scratch.run_dir(), format!("{}/lock", scratch.dir), format!("{}/log", scratch.dir)] {
        scratch.sys("/bin/mkdir", &["-p", "-m", "0700", &dir]).await?;
    }
    let live_paths = Paths::of(live);
    let paths = Paths { conf: format!("{}/pgbackrest.conf", scratch.dir), ..Paths::of(live) };
    let policy = config::policy(&s.db, inst).await?;
    let pass = config::cipher_pass(&s.db, &s.key, inst).await?;
    scratch.write_file(&paths.conf, &scratch_conf(live, scratch, &live_paths, &pass, &policy), "0600").await?;
    let restoring = Instant::now();
    let restore = super::ops::pgbackrest(
        scratch,
        &paths,
        &[
            "restore",
            &format!("--pg1-path={}", scratch.data()),
            "--type=time",
            &format!("--target={when}"),
            "--target-action=promote",
            "--archive-mode=off",
        ],
        super::ops::LONG_COMMAND,
    )
    .await;
    restore.map_err(|e| OpError { message: format!("pgbackrest restore: {}", e.message), ..e })?;
    let backup_login = format!("{physical}_backup");
    scratch
        .replace_file(
            &format!("{}/pg_hba.conf", scratch.data()),
            &format!(
                "# A point-in-time scratch cluster: the service and the backup login only.\n\
                 local   all  postgres                      peer\n\
                 hostssl all  {SERVICE_ADMIN},{backup_login}  0.0.0.0/0  scram-sha-256\n\
                 hostssl all  {SERVICE_ADMIN},{backup_login}  ::/0       scram-sha-256\n"
            ),
            "0600",
        )
        .await?;
    append_conf(scratch, &overrides(scratch)).await?;
    let restored_ms = restoring.elapsed().as_millis();

    ctx.step("recovering to the target time").await;
    let recovering = Instant::now();
    recover(ctx, scratch).await?;
    let log = scratch.read_file(&scratch.log_file()).await.unwrap_or_default();
    if let Some(line) = log.lines().find(|l| l.contains("recovery stopping")) {
        ctx.log("info", line.split("LOG:").nth(1).unwrap_or(line).trim()).await;
    }
    let recovered_ms = recovering.elapsed().as_millis();

    ctx.step(&format!("dumping {physical} from the scratch cluster")).await;
    let dumping = Instant::now();
    let mut server = inst.clone();
    server.port = i32::from(scratch.port);
    dbaas_domain::catalog::backups::backup_from(ctx, backup.id, Some(&server)).await?;
    ctx.log(
        "info",
        &format!(
            "parts: repository restore {restored_ms} ms, recovery {recovered_ms} ms, dump {} ms",
            dumping.elapsed().as_millis()
        ),
    )
    .await;
    Ok(())
}

/// The scratch cluster's pgBackRest configuration: the instance's repository, its own lock
/// and log paths, no asynchronous archiving (nothing shares the instance's spool).
fn scratch_conf(live: &Node, scratch: &Node, paths: &Paths, pass: &str, policy: &config::Policy) -> String {
    let conf = config::render(live, paths, pass, policy);
    conf.lines()
        .filter(|l| !l.starts_with("archive-async=") && !l.starts_with("spool-path="))
        .map(|l| {
            if l.starts_with("lock-path=") {
                format!("lock-path={}/lock", scratch.dir)
            } else if l.starts_with("log-path=") {
                format!("log-path={}/log", scratch.dir)
            } else if l.starts_with("pg1-path=") {
                format!("pg1-path={}", scratch.data())
            } else if l.starts_with("pg1-port=") {
                format!("pg1-port={}", scratch.port)
            } else if l.starts_with("pg1-socket-path=") {
                format!("pg1-socket-path={}", scratch.run_dir())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Settings that come last (`postgresql.auto.conf`): its own port and socket, no hot
/// standby (then the instance's connection limits need not be matched), small memory (it
/// serves one dump), archiving off.
fn overrides(scratch: &Node) -> String {
    format!(
        "# dbaas point-in-time scratch cluster\n\
         port = {}\n\
         unix_socket_directories = '{}'\n\
         hot_standby = off\n\
         shared_buffers = '128MB'\n\
         max_connections = 20\n\
         archive_mode = 'off'\n",
        scratch.port,
        scratch.run_dir()
    )
}

async fn append_conf(scratch: &Node, lines: &str) -> Result<(), OpError> {
    let path = format!("{}/postgresql.auto.conf", scratch.data());
    let text = scratch.read_file(&path).await?;
    scratch.replace_file(&path, &format!("{text}\n{lines}"), "0600").await?;
    Ok(())
}

/// Starts the scratch cluster and waits until recovery ended and it was promoted. A target
/// past the archive's last commit ends recovery early: then the archive's end is the state
/// at the target, and recovery runs to it.
async fn recover(ctx: &OpContext, scratch: &Node) -> Result<(), OpError> {
    for round in 0..2 {
        scratch.start().await?;
        loop {
            match psql(scratch, "SELECT pg_catalog.pg_is_in_recovery()").await {
                Ok(out) if out.trim() == "f" => return Ok(()),
                Ok(_) | Err(ExecError::Failed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            if !scratch.running().await? {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let log = scratch.read_file(&scratch.log_file()).await.unwrap_or_default();
        if round == 0 && log.contains(NOT_REACHED) {
            ctx.log("info", "no commit after the target in the archive: recovering to its end, the same state").await;
            append_conf(scratch, "recovery_target_time = ''\n").await?;
            continue;
        }
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        return Err(OpError::permanent(
            "recovery_failed",
            format!("the scratch cluster stopped during recovery: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | ")),
        ));
    }
    Err(OpError::permanent("recovery_failed", "the scratch cluster did not finish recovery"))
}

async fn psql(node: &Node, sql: &str) -> Result<String, ExecError> {
    let port = node.port.to_string();
    let run = node.run_dir();
    let out = node.pg("psql", &["-X", "-At", "-h", &run, "-p", &port, "-U", "postgres", "-d", "postgres", "-c", sql]).await?;
    Ok(out.stdout)
}

/// Stops the scratch cluster if it runs and removes its directory (only a `.pitr-`
/// directory directly under the host's data root).
async fn remove(scratch: &Node) -> Result<(), OpError> {
    let inside = scratch
        .dir
        .strip_prefix(&format!("{}/.pitr-", scratch.host.data_root))
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if !inside {
        return Err(OpError::permanent("invalid", format!("refusing to remove {}", scratch.dir)));
    }
    if scratch.exists(&format!("{}/PG_VERSION", scratch.data())).await? {
        scratch.stop("immediate").await?;
    }
    scratch.sys("/bin/rm", &["-rf", "--one-file-system", &scratch.dir]).await?;
    Ok(())
}

/// A port of the host's range no instance has and nothing listens on, from the top (new
/// instances take theirs from the bottom).
async fn free_port(ctx: &OpContext, live: &Node) -> Result<u16, OpError> {
    let ours: Vec<i32> = sqlx::query_scalar("SELECT port FROM instances WHERE host_id = $1 AND status <> 'deleted'")
        .bind(live.host.id)
        .fetch_all(&ctx.state.db)
        .await?;
    let listening = Node::listening_ports(&live.exec).await?;
    let (lo, hi) = (live.host.port_range_start as u16, live.host.port_range_end as u16);
    (lo..=hi)
        .rev()
        .find(|p| !ours.contains(&i32::from(*p)) && !listening.contains(p))
        .ok_or_else(|| OpError::retryable("no_free_port", format!("no free port in {}'s range for a scratch cluster", live.host.name)))
}
