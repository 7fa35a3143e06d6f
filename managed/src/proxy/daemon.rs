//! The proxy process on its host: its directory, files, start, reload and admin console,
//! all through the host's executor as the `postgres` system user (argument vectors, no
//! shell). Files go through the same helpers as an instance's (`Node`): written 0600 before
//! any content reaches them, replaced by rename.

use std::sync::Arc;
use std::time::Duration;

use dbaas_engine::OpError;
use dbaas_hosts::executor::{Command, ExecError, Executor};
use dbaas_hosts::{HostExec, HostRecord};

use crate::node::{process_state, Node};

/// Where Debian's package puts it.
pub const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// A host's proxy.
pub struct Daemon {
    files: Node,
    port: u16,
    /// `psql` of a PostgreSQL version the host has: the admin console's client.
    psql: String,
}

impl Daemon {
    pub fn new(exec: Arc<HostExec>, host: &HostRecord, port: u16) -> Result<Self, OpError> {
        let bin = host.pg_versions.0.first().map(|v| v.bin_dir.clone()).ok_or_else(|| {
            OpError::permanent("no_postgresql", format!("host {} has no PostgreSQL client binaries", host.name))
        })?;
        let files =
            Node { exec, host: host.clone(), name: "proxy".into(), port, dir: host.proxy_dir(), bin: bin.clone() };
        Ok(Self { files, port, psql: format!("{bin}/psql") })
    }

    pub fn dir(&self) -> &str {
        &self.files.dir
    }

    pub fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.files.dir)
    }

    /// The directory and its socket directory, private to the proxy's user.
    pub async fn prepare(&self) -> Result<(), OpError> {
        if !self.files.exists(PGBOUNCER).await? {
            return Err(OpError::permanent(
                "pgbouncer_missing",
                format!(
                    "pgbouncer is not installed on host {} ({PGBOUNCER}; Debian package pgbouncer)",
                    self.files.host.name
                ),
            ));
        }
        let run = self.path("run");
        self.files.sys("/usr/bin/install", &["-d", "-m", "0700", self.dir(), &run]).await?;
        Ok(())
    }

    pub async fn exists(&self, name: &str) -> Result<bool, OpError> {
        Ok(self.files.exists(&self.path(name)).await?)
    }

    pub async fn read(&self, name: &str) -> Result<Option<String>, OpError> {
        if !self.exists(name).await? {
            return Ok(None);
        }
        Ok(Some(self.files.read_file(&self.path(name)).await?))
    }

    pub async fn replace(&self, name: &str, content: &str, mode: &str) -> Result<(), OpError> {
        Ok(self.files.replace_file(&self.path(name), content, mode).await?)
    }

    /// Files in the directory whose names start with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, OpError> {
        // `ls`, not `find`: find changes directory, and over SSH the login's working
        // directory is not the postgres user's to return to.
        let out = self.files.sys("/bin/ls", &["-1", "-A", "--", self.dir()]).await?;
        Ok(out.stdout.lines().filter(|f| f.starts_with(prefix)).map(str::to_string).collect())
    }

    pub async fn remove(&self, name: &str) -> Result<(), OpError> {
        self.files.sys("/bin/rm", &["-f", "--", &self.path(name)]).await?;
        Ok(())
    }

    /// The PID of the running proxy (`None` when its pid file names no live process).
    pub async fn pid(&self) -> Result<Option<u32>, OpError> {
        let Some(text) = self.read("pgbouncer.pid").await? else { return Ok(None) };
        let Some(pid) = text.trim().parse::<u32>().ok() else { return Ok(None) };
        match self.files.sys("/bin/cat", &[&format!("/proc/{pid}/stat")]).await {
            // A proxy killed (SIGKILL) and not reaped yet is a zombie: gone for us.
            Ok(out) if process_state(&out.stdout).is_some_and(|s| s != 'Z') && out.stdout.contains("(pgbouncer)") => {
                Ok(Some(pid))
            }
            Ok(_) | Err(ExecError::Failed { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts the proxy (a daemon: it outlives this call and the service) and waits until
    /// its admin console answers.
    pub async fn start(&self) -> Result<(), OpError> {
        // A pid file of a dead proxy makes pgbouncer refuse to start.
        self.remove("pgbouncer.pid").await?;
        let ini = self.path("pgbouncer.ini");
        if let Err(e) = self.files.exec.run(&Command::new(PGBOUNCER, &["-d", "-q", &ini])?.as_postgres()).await {
            let log = self.log_tail().await;
            return Err(OpError::retryable("proxy_start", format!("starting pgbouncer failed: {e}; log: {log}")));
        }
        let started = std::time::Instant::now();
        loop {
            match self.admin("SHOW VERSION").await {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > Duration::from_secs(10) => {
                    let log = self.log_tail().await;
                    return Err(OpError::retryable(
                        "proxy_start",
                        format!("pgbouncer did not answer 10 s after its start: {}; log: {log}", e.message),
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Re-reads the configuration: clients stay connected.
    pub async fn reload(&self) -> Result<(), OpError> {
        self.admin("RELOAD").await.map(|_| ())
    }

    /// One admin-console command (peer authentication on the unix socket), its rows as
    /// `|`-separated fields.
    pub async fn admin(&self, command: &str) -> Result<String, OpError> {
        self.console(command, "-t").await
    }

    /// A `SHOW` command's table: its header line, then its rows (`|`-separated).
    pub async fn table(&self, command: &str) -> Result<String, OpError> {
        self.console(command, "-Pfooter=off").await
    }

    async fn console(&self, command: &str, shape: &str) -> Result<String, OpError> {
        let port = self.port.to_string();
        let run = self.path("run");
        let cmd = Command::new(
            &self.psql,
            &[
                "-X",
                "-q",
                "-A",
                shape,
                "-F",
                "|",
                "-h",
                &run,
                "-p",
                &port,
                "-U",
                super::config::ADMIN_USER,
                "-d",
                "pgbouncer",
                "-c",
                command,
            ],
        )?
        .as_postgres()
        .timeout(Duration::from_secs(10));
        match self.files.exec.run(&cmd).await {
            Ok(out) => Ok(out.stdout),
            Err(e) => Err(OpError::retryable("proxy_admin", format!("pgbouncer's console: {e}"))),
        }
    }

    /// Stops the proxy (a host taken out of service, with no instance left to route to):
    /// SIGTERM, pgbouncer's immediate shutdown, then waits until it is gone.
    pub async fn stop(&self) -> Result<(), OpError> {
        let Some(pid) = self.pid().await? else { return Ok(()) };
        self.files.sys("/bin/kill", &["-TERM", &pid.to_string()]).await?;
        let started = std::time::Instant::now();
        while self.pid().await?.is_some() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(OpError::retryable(
                    "proxy_stop",
                    format!("pgbouncer (PID {pid}) still runs 10 s after SIGTERM"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    async fn log_tail(&self) -> String {
        let out = self.files.sys("/usr/bin/tail", &["-n", "5", &self.path("pgbouncer.log")]).await;
        out.map(|o| o.stdout.trim().to_string()).unwrap_or_default()
    }
}
