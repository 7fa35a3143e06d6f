//! One managed cluster on its host: its paths and the commands that act on it.

use std::sync::Arc;

use uuid::Uuid;

use dbaas_hosts::executor::{Command, ExecError, Executor, Output};
use dbaas_hosts::HostExec;
use dbaas_hosts::{validate_data_root, HostRecord};

pub struct Node {
    pub exec: Arc<HostExec>,
    pub host: HostRecord,
    pub name: String,
    pub port: u16,
    /// The instance's directory on the host.
    pub dir: String,
    /// Server binaries of its major version.
    pub bin: String,
}

/// `<data_root>/<name>-<first 8 hex of the id>`: readable, and never the directory of an
/// earlier instance of the same name.
pub fn instance_dir(data_root: &str, name: &str, id: Uuid) -> String {
    format!("{data_root}/{name}-{}", &id.simple().to_string()[..8])
}

/// `pg_ctl status` exit codes.
const PG_CTL_NOT_RUNNING: i32 = 3;
const PG_CTL_NO_DATA_DIR: i32 = 4;

impl Node {
    pub fn data(&self) -> String {
        format!("{}/pgdata", self.dir)
    }

    pub fn run_dir(&self) -> String {
        format!("{}/run", self.dir)
    }

    pub fn log_file(&self) -> String {
        format!("{}/server.log", self.dir)
    }

    fn program(&self, name: &str) -> String {
        format!("{}/{name}", self.bin)
    }

    /// Runs a PostgreSQL binary of this version as the postgres user.
    pub async fn pg(&self, program: &str, args: &[&str]) -> Result<Output, ExecError> {
        self.exec.run(&Command::new(&self.program(program), args)?.as_postgres()).await
    }

    /// Runs a system program as the postgres user.
    pub async fn sys(&self, program: &str, args: &[&str]) -> Result<Output, ExecError> {
        self.exec.run(&Command::new(program, args)?.as_postgres()).await
    }

    pub async fn exists(&self, path: &str) -> Result<bool, ExecError> {
        match self.sys("/usr/bin/test", &["-e", path]).await {
            Ok(_) => Ok(true),
            Err(ExecError::Failed { status: 1, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes a file owned by the postgres user with the given mode (content via stdin).
    pub async fn write_file(&self, path: &str, content: &str, mode: &str) -> Result<(), ExecError> {
        // The file is created 0600 before any content reaches it (keys never sit readable).
        self.sys("/usr/bin/install", &["-m", "0600", "/dev/null", path]).await?;
        self.exec
            .run(&Command::new("/bin/dd", &[&format!("of={path}"), "status=none"])?.as_postgres().stdin(content))
            .await?;
        if mode != "0600" {
            self.sys("/bin/chmod", &[mode, path]).await?;
        }
        Ok(())
    }

    /// Writes `path` whole or not at all: a sibling file first, then a rename.
    pub async fn replace_file(&self, path: &str, content: &str, mode: &str) -> Result<(), ExecError> {
        let next = format!("{path}.next");
        self.write_file(&next, content, mode).await?;
        self.sys("/bin/mv", &["-f", "--", &next, path]).await?;
        Ok(())
    }

    pub async fn read_file(&self, path: &str) -> Result<String, ExecError> {
        Ok(self.sys("/bin/cat", &[path]).await?.stdout)
    }

    /// Whether the postmaster runs (`pg_ctl status`).
    pub async fn running(&self) -> Result<bool, ExecError> {
        match self.pg("pg_ctl", &["status", "-D", &self.data()]).await {
            Ok(_) => Ok(true),
            Err(ExecError::Failed { status: PG_CTL_NOT_RUNNING | PG_CTL_NO_DATA_DIR, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Starts the server and waits until it accepts connections. The log file takes the
    /// server's output, so no pipe of ours stays open behind it.
    pub async fn start(&self) -> Result<(), ExecError> {
        if self.running().await? {
            // A postmaster killed (SIGKILL, OOM) stays a zombie until something reaps it, and
            // `pg_ctl status` and PostgreSQL's own lock file check both take it for a live
            // server: nothing can start until it is gone.
            if let Some(pid) = self.zombie_postmaster().await? {
                return Err(ExecError::NotReaped(format!(
                    "the previous server process (PID {pid}) died and has not been reaped yet"
                )));
            }
        } else {
            let r = self.pg("pg_ctl", &["start", "-D", &self.data(), "-l", &self.log_file(), "-w", "-t", "60"]).await;
            if let Err(ExecError::Failed { program, status, stderr }) = r {
                // pg_ctl only says "could not start server": the reason is in the log.
                let log = self.log_tail().await;
                return Err(ExecError::Failed { program, status, stderr: format!("{stderr}; server log: {log}") });
            }
            r?;
        }
        self.ensure_listening().await
    }

    /// The postmaster's PID when the process named in `postmaster.pid` is a zombie.
    async fn zombie_postmaster(&self) -> Result<Option<u32>, ExecError> {
        let Ok(pidfile) = self.read_file(&format!("{}/postmaster.pid", self.data())).await else {
            return Ok(None);
        };
        let Some(pid) = pidfile.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) else {
            return Ok(None);
        };
        match self.sys("/bin/cat", &[&format!("/proc/{pid}/stat")]).await {
            Ok(out) => Ok(process_state(&out.stdout).filter(|s| *s == 'Z').map(|_| pid)),
            Err(ExecError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A postmaster that died (SIGKILL, OOM) leaves `postmaster.pid` behind, and pgBackRest
    /// will not restore over it. When its process is gone (or a zombie), the file is moved to
    /// `<dir>/postmaster.pid.dead`, to be put back by [`Node::put_back_pidfile`] before the
    /// next start: PostgreSQL then finds it stale and checks that no process of the old
    /// server still uses its shared memory (starting beside one would corrupt data).
    /// Whether it moved one.
    pub async fn set_aside_dead_pidfile(&self) -> Result<bool, ExecError> {
        let pidfile = format!("{}/postmaster.pid", self.data());
        let Ok(text) = self.read_file(&pidfile).await else { return Ok(false) };
        let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) else { return Ok(false) };
        let alive = match self.sys("/bin/cat", &[&format!("/proc/{pid}/stat")]).await {
            Ok(out) => process_state(&out.stdout) != Some('Z'),
            Err(ExecError::Failed { .. }) => false,
            Err(e) => return Err(e),
        };
        if alive {
            return Ok(false);
        }
        self.sys("/bin/mv", &["-f", "--", &pidfile, &format!("{}/postmaster.pid.dead", self.dir)]).await?;
        Ok(true)
    }

    /// Puts a pid file set aside by [`Node::set_aside_dead_pidfile`] back (if there is one).
    pub async fn put_back_pidfile(&self) -> Result<(), ExecError> {
        let aside = format!("{}/postmaster.pid.dead", self.dir);
        if self.exists(&aside).await? {
            self.sys("/bin/mv", &["-f", "--", &aside, &format!("{}/postmaster.pid", self.data())]).await?;
        }
        Ok(())
    }

    /// The last lines of the server log (empty when it cannot be read).
    async fn log_tail(&self) -> String {
        let out = self.sys("/usr/bin/tail", &["-n", "5", &self.log_file()]).await;
        out.map(|o| o.stdout.trim().to_string()).unwrap_or_default()
    }

    /// A server can come up without the socket its clients use. When any socket without
    /// SO_REUSEADDR holds the port for IPv4 — an outgoing connection whose local port it is,
    /// even one in TIME_WAIT — PostgreSQL only warns, listens on IPv6 and the unix socket,
    /// and every client of the instance's address is refused while `pg_ctl status` says all
    /// is well. Such a server is stopped again and the start fails, retryably: the port is
    /// usually free a minute later.
    async fn ensure_listening(&self) -> Result<(), ExecError> {
        let v6 = self.host.instance_address().parse::<std::net::Ipv6Addr>().is_ok();
        let table = if v6 { "/proc/net/tcp6" } else { "/proc/net/tcp" };
        let out = self.sys("/bin/cat", &[table]).await?;
        if wildcard_listeners(&out.stdout).contains(&self.port) {
            return Ok(());
        }
        let log = self.log_tail().await;
        self.stop("fast").await?;
        Err(ExecError::PortUnavailable(format!(
            "the server started without listening on {} port {} (another socket holds it); stopped it again; server log: {log}",
            if v6 { "IPv6" } else { "IPv4" },
            self.port
        )))
    }

    /// Stops the server: `fast` disconnects sessions cleanly, `immediate` for teardown.
    pub async fn stop(&self, mode: &str) -> Result<(), ExecError> {
        if !self.running().await? {
            return Ok(());
        }
        self.pg("pg_ctl", &["stop", "-D", &self.data(), "-m", mode, "-w", "-t", "60"]).await.map(|_| ())
    }

    /// Stops the server if it runs and removes the instance's directory.
    pub async fn remove(&self) -> Result<(), ExecError> {
        // Never remove anything but an instance directory under the host's data root.
        let inside =
            self.dir.strip_prefix(&format!("{}/", self.host.data_root)).is_some_and(|rest| !rest.contains('/'));
        if !inside || validate_data_root(&self.dir).is_err() {
            return Err(ExecError::Invalid(format!("refusing to remove {}: not an instance directory", self.dir)));
        }
        if self.exists(&self.data()).await? {
            self.stop("immediate").await?;
        }
        self.sys("/bin/rm", &["-rf", "--one-file-system", &self.dir]).await?;
        Ok(())
    }

    /// Ports something listens on (TCP, v4 and v6), read from /proc/net.
    pub async fn listening_ports(exec: &HostExec) -> Result<Vec<u16>, ExecError> {
        let out = exec.run(&Command::new("/bin/cat", &["/proc/net/tcp", "/proc/net/tcp6"])?).await?;
        Ok(parse_listening(&out.stdout))
    }
}

/// Local ports of sockets in state LISTEN (`0A`) in /proc/net/tcp{,6} text.
fn parse_listening(text: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            (state == "0A").then(|| local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()))?
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The state letter of a `/proc/<pid>/stat` line (`R`, `S`, `Z`, …): the field after the
/// command name, which is in parentheses and may itself hold spaces or parentheses.
pub(crate) fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Ports listened on at the wildcard address (what `listen_addresses = '*'` binds).
fn wildcard_listeners(text: &str) -> Vec<u16> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, port) = f.nth(1)?.rsplit_once(':')?;
            let listening = f.nth(1)? == "0A";
            (listening && !addr.is_empty() && addr.bytes().all(|b| b == b'0')).then_some(())?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:15B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000   104        0 1 1\n\
           1: 0100007F:9C40 0100007F:15B3 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
           0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0\n";
        assert_eq!(parse_listening(text), vec![22, 5555]);
        // 127.0.0.1:5555 is not the wildcard address; :: port 22 is.
        assert_eq!(wildcard_listeners(text), vec![22]);
        let v4 = "  sl  local_address\n 0: 00000000:15B3 00000000:0000 0A 0\n 1: 00000000:15B4 00000000:0000 06 0\n";
        assert_eq!(wildcard_listeners(v4), vec![5555]);
    }

    #[test]
    fn proc_stat_state() {
        assert_eq!(process_state("22969 (postgres) Z 1 22969 22969 0 -1 4228164"), Some('Z'));
        assert_eq!(process_state("7 (a) b) (c) S 1 7"), Some('S'));
        assert_eq!(process_state("garbage"), None);
    }

    #[test]
    fn dirs() {
        let id: Uuid = "0123456789abcdef0123456789abcdef".parse().expect("uuid");
        assert_eq!(instance_dir("/var/lib/dbaas", "pg1", id), "/var/lib/dbaas/pg1-01234567");
    }
}
