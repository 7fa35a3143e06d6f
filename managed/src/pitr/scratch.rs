//! Scratch clusters: the instance's repository restored, to a time or to the archive's end,
//! into a cluster of its own on the same host — for a database's point-in-time restore
//! ([`super::database`]) and for drills ([`super::drill`]). The live cluster is never touched.
//!
//! A scratch cluster is `<data_root>/.pitr-<id>` (instance directories start with a letter, so
//! the name is nobody else's), listens on a free port of the host's range, takes logins only
//! for the roles its user names (its `pg_hba.conf` is replaced: credentials revoked since that
//! time must not open it), has its own pgBackRest configuration (its own lock and log paths,
//! synchronous `archive-get`, archiving off), and is removed whatever happens. An attempt cut
//! short leaves a directory the next attempt removes first. One scratch cluster per instance
//! at a time (each is a full copy of it on the same disk): another restore or drill waits
//! its turn, retried.
//!
//! A target later than the archive's last commit but inside the window (see
//! [`super::window`]) is the archive's end: PostgreSQL stops with "recovery ended before
//! configured recovery target was reached", and recovery is then let run to the end.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use dbaas_domain::catalog::conn::InstanceRow;
use dbaas_domain::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_hosts::executor::ExecError;

use super::config::{self, Paths};
use crate::node::Node;

const NOT_REACHED: &str = "recovery ended before configured recovery target was reached";

/// How far recovery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Time(DateTime<Utc>),
    /// The end of the archive.
    Latest,
}

/// A recovered scratch cluster, serving on `node.port`.
pub struct Scratch {
    pub node: Node,
    /// Holds the instance's scratch lock (a session advisory lock on a connection of its own,
    /// closed when this is dropped): one scratch cluster per instance at a time, since each
    /// is a full copy of the instance on the same disk.
    _guard: sqlx::PgConnection,
    pub restored_ms: u128,
    pub recovered_ms: u128,
    /// The last transaction recovery replayed (from the server's log), if any.
    pub recovery_point: Option<DateTime<Utc>>,
}

/// The scratch cluster's directory for `id` (a backup's or an operation's).
pub fn scratch_dir(data_root: &str, id: uuid::Uuid) -> String {
    format!("{data_root}/.pitr-{}", id.simple())
}

/// Restores `live`'s repository into a fresh scratch cluster `dir`, lets only `logins` in
/// (and the postgres system user over the socket), and recovers it to `target`.
pub async fn open(
    ctx: &OpContext,
    inst: &InstanceRow,
    live: &Node,
    id: uuid::Uuid,
    target: Target,
    logins: &[&str],
) -> Result<Scratch, OpError> {
    let s = &ctx.state;
    let guard = lock(ctx, inst).await?;
    let port = free_port(ctx, live).await?;
    let node = Node {
        exec: live.exec.clone(),
        host: live.host.clone(),
        name: live.name.clone(),
        port,
        dir: scratch_dir(&live.host.data_root, id),
        bin: live.bin.clone(),
    };
    remove(&node).await?;
    let what = match target {
        Target::Time(t) => format!("to {}", when(t)),
        Target::Latest => "to the end of the archive".into(),
    };
    ctx.step(&format!("scratch cluster {} on port {}: restoring the instance {what}", node.dir, node.port)).await;
    let opened = async {
        for dir in [node.dir.clone(), node.run_dir(), format!("{}/lock", node.dir), format!("{}/log", node.dir)] {
            node.sys("/bin/mkdir", &["-p", "-m", "0700", &dir]).await?;
        }
        let live_paths = Paths::of(live);
        let paths = Paths { conf: format!("{}/pgbackrest.conf", node.dir), ..Paths::of(live) };
        let policy = config::policy(&s.db, inst).await?;
        let pass = config::cipher_pass(&s.db, &s.key, inst).await?;
        node.write_file(&paths.conf, &scratch_conf(live, &node, &live_paths, &pass, &policy), "0600").await?;
        let restoring = Instant::now();
        let pg1 = format!("--pg1-path={}", node.data());
        let until = match target {
            Target::Time(t) => super::sets::Until::Time(t),
            Target::Latest => super::sets::Until::End,
        };
        let (set, size) = super::sets::chosen(live, until).await?;
        // Checked where the copy goes, before it is made.
        super::sets::room_for(&node, &node.dir, size).await?;
        let mut args = vec!["restore", pg1.as_str(), set.as_str(), "--archive-mode=off"];
        let target_arg;
        if let Target::Time(t) = target {
            // Without a target, recovery runs to the archive's end and promotes by itself.
            target_arg = format!("--target={}", when(t));
            args.extend(["--type=time", target_arg.as_str(), "--target-action=promote"]);
        }
        let restore = super::ops::pgbackrest(&node, &paths, &args, super::ops::LONG_COMMAND).await;
        restore.map_err(|e| OpError { message: format!("pgbackrest restore: {}", e.message), ..e })?;
        node.replace_file(&format!("{}/pg_hba.conf", node.data()), &hba(logins), "0600").await?;
        append_conf(&node, &overrides(&node)).await?;
        let restored_ms = restoring.elapsed().as_millis();
        ctx.step("recovering").await;
        let recovering = Instant::now();
        recover(ctx, &node, matches!(target, Target::Time(_))).await?;
        let log = node.read_file(&node.log_file()).await.unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("recovery stopping")) {
            ctx.log("info", line.split("LOG:").nth(1).unwrap_or(line).trim()).await;
        }
        Ok::<_, OpError>((restored_ms, recovering.elapsed().as_millis(), recovery_point(&log)))
    }
    .await;
    match opened {
        Ok((restored_ms, recovered_ms, recovery_point)) => {
            Ok(Scratch { node, _guard: guard, restored_ms, recovered_ms, recovery_point })
        }
        Err(e) => {
            close(ctx, &node).await;
            Err(e)
        }
    }
}

/// The instance's scratch lock, or a retryable error while another restore or drill holds it.
async fn lock(ctx: &OpContext, inst: &InstanceRow) -> Result<sqlx::PgConnection, OpError> {
    // Out of the pool: the session lock goes with the connection, never back into the pool.
    let mut conn = ctx.state.db.acquire().await?.detach();
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("dbaas:pitr-scratch:{}", inst.id))
        .fetch_one(&mut conn)
        .await?;
    if !got {
        return Err(OpError::retryable(
            "scratch_busy",
            format!("another restore or drill of instance {}'s archive runs now; trying again shortly", inst.name),
        ));
    }
    Ok(conn)
}

/// Stops and removes a scratch cluster; a failure is logged (the next attempt removes it).
pub async fn close(ctx: &OpContext, node: &Node) {
    if let Err(e) = remove(node).await {
        ctx.log("warn", &format!("removing the scratch cluster {}: {}", node.dir, e.message)).await;
    }
}

/// `recovery_target_time`'s text: microseconds, UTC.
pub(crate) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// Only the postgres system user locally, and the given logins over TLS.
/// Each login double-quoted (pg_hba reads a quoted name as that name, never as a keyword such
/// as `all` or a `+group`); role names are ours and hold no quote.
fn hba(logins: &[&str]) -> String {
    let who = logins.iter().map(|l| format!("\"{}\"", l.replace('"', ""))).collect::<Vec<_>>().join(",");
    format!(
        "# A point-in-time scratch cluster: {who} only.\n\
         local   all  postgres               peer\n\
         hostssl all  {who}  0.0.0.0/0  scram-sha-256\n\
         hostssl all  {who}  ::/0       scram-sha-256\n"
    )
}

/// "last completed transaction was at log time …", which PostgreSQL logs when recovery ends.
pub fn recovery_point(log: &str) -> Option<DateTime<Utc>> {
    let line = log.lines().rev().find(|l| l.contains("last completed transaction was at log time"))?;
    let text = line.split("log time ").nth(1)?.trim();
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").map(|t| t.with_timezone(&Utc)).ok().or_else(|| {
        NaiveDateTime::parse_from_str(text.trim_end_matches(" UTC").trim_end_matches("+00"), "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|n| n.and_utc())
    })
}

/// The scratch cluster's pgBackRest configuration: the instance's repository, its own lock
/// and log paths, no asynchronous archiving (nothing shares the instance's spool).
pub(crate) fn scratch_conf(live: &Node, scratch: &Node, paths: &Paths, pass: &str, policy: &config::Policy) -> String {
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

pub(crate) async fn append_conf(scratch: &Node, lines: &str) -> Result<(), OpError> {
    let path = format!("{}/postgresql.auto.conf", scratch.data());
    let text = scratch.read_file(&path).await?;
    scratch.replace_file(&path, &format!("{text}\n{lines}"), "0600").await?;
    Ok(())
}

/// Starts a restored cluster (a scratch one, or an instance restored in place or seeded from
/// another's repository) and waits until recovery ended and it was promoted. A target
/// past the archive's last commit ends recovery early: then the archive's end is the state
/// at the target, and recovery runs to it.
pub(crate) async fn recover(ctx: &OpContext, scratch: &Node, to_time: bool) -> Result<(), OpError> {
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
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = scratch.read_file(&scratch.log_file()).await.unwrap_or_default();
        if round == 0 && to_time && log.contains(NOT_REACHED) {
            ctx.log("info", "no commit after the target in the archive: recovering to its end, the same state").await;
            append_conf(scratch, "recovery_target_time = ''\n").await?;
            continue;
        }
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        return Err(OpError::permanent(
            "recovery_failed",
            format!("the server stopped during recovery: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | ")),
        ));
    }
    Err(OpError::permanent("recovery_failed", "the server did not finish recovery"))
}

/// The cluster's databases but the templates (over its socket, as the postgres user).
pub(crate) async fn databases(node: &Node) -> Result<Vec<String>, OpError> {
    let out = psql(node, "SELECT datname FROM pg_catalog.pg_database WHERE NOT datistemplate ORDER BY 1").await?;
    Ok(out.lines().map(str::to_string).collect())
}

pub(crate) async fn psql(node: &Node, sql: &str) -> Result<String, ExecError> {
    let port = node.port.to_string();
    let run = node.run_dir();
    let out =
        node.pg("psql", &["-X", "-At", "-h", &run, "-p", &port, "-U", "postgres", "-d", "postgres", "-c", sql]).await?;
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
    (lo..=hi).rev().find(|p| !ours.contains(&i32::from(*p)) && !listening.contains(p)).ok_or_else(|| {
        OpError::retryable("no_free_port", format!("no free port in {}'s range for a scratch cluster", live.host.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_points_are_read_from_the_log() {
        let log = "2026-12-03 15:13:09.638 UTC [1] LOG:  recovery stopping before commit of transaction 726\n\
                   2026-12-03 15:13:09.640 UTC [1] LOG:  last completed transaction was at log time 2026-12-03 15:09:25.547273+00\n";
        assert_eq!(recovery_point(log).unwrap().to_rfc3339(), "2026-12-03T15:09:25.547273+00:00");
        assert_eq!(recovery_point("nothing"), None);
        assert_eq!(when(recovery_point(log).unwrap()), "2026-12-03 15:09:25.547273+00");
    }

    #[test]
    fn scratch_clusters_let_in_only_whom_they_name() {
        let text = hba(&["dbaas_admin", "dab12_backup"]);
        assert!(text.contains(r#"hostssl all  "dbaas_admin","dab12_backup"  0.0.0.0/0  scram-sha-256"#), "{text}");
        assert!(hba(&["all"]).contains(r#"hostssl all  "all"  "#));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 3);
    }
}
