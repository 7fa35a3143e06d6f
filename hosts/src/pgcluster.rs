//! Local PostgreSQL clusters started with the machine's binaries (`initdb`, `pg_ctl`).
//!
//! Used by `dbaas-api dev` (the state database and the `local` instance) and by the test
//! harness (throwaway clusters). `initdb` refuses to run as root, so when we are root every
//! PostgreSQL command runs as the `postgres` system user and the cluster's files belong to it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

const DEFAULT_BIN_DIRS: &[&str] =
    &["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"];

/// Where the PostgreSQL server binaries are: `$PG_BIN_DIR`, a known Debian path, or `$PATH`.
pub fn find_bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
        bail!("PG_BIN_DIR={} has no initdb", dir.display());
    }
    for d in DEFAULT_BIN_DIRS {
        if Path::new(d).join("pg_ctl").exists() {
            return Ok(PathBuf::from(d));
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    bail!("PostgreSQL server binaries not found: install postgresql (initdb, pg_ctl) or set PG_BIN_DIR")
}

/// The user PostgreSQL processes run as: ourselves, or `postgres` when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// The group of the user clusters run as when we are root (`None` otherwise).
pub fn postgres_gid() -> Result<Option<u32>> {
    Ok(run_as()?.map(|r| r.gid))
}

fn run_as() -> Result<Option<RunAs>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")
        .context("looking up the postgres user")?
        .context("running as root, and initdb refuses root: create a `postgres` system user (apt-get install postgresql does) or run as an unprivileged user")?;
    Ok(Some(RunAs { uid: user.uid.as_raw(), gid: user.gid.as_raw() }))
}

/// What kind of cluster to make.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Fixed port, else a free one (kept for a reused data dir).
    pub port: Option<u16>,
    /// Serve TLS with a generated CA and server certificate; network logins must use TLS.
    pub tls: bool,
    /// Trade durability for speed (fsync off): throwaway clusters only.
    pub throwaway: bool,
    /// Also listen on this address and accept (SCRAM) logins from this network (CIDR):
    /// clients in other network namespaces (the replica tests).
    pub also_listen: Option<(String, String)>,
}

/// A running cluster. Dropping it stops the server (the files stay with the directory).
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    bin: PathBuf,
    run_as: Option<RunAs>,
    pub port: u16,
    pub password: String,
    /// PEM of the CA that signed the server certificate (TLS clusters).
    pub ca_cert: Option<String>,
    stop_on_drop: bool,
}

impl Cluster {
    /// Creates (or reuses) a cluster under `root` and starts it.
    pub fn start(root: &Path, opts: &ClusterOptions) -> Result<Self> {
        let bin = find_bin_dir()?;
        let run_as = run_as()?;
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let root = root.canonicalize()?;
        if let Some(r) = run_as {
            check_traversable(&root, r)?;
        }
        let data = root.join("pgdata");
        let fresh = !data.join("PG_VERSION").exists();
        let (password, port) = if fresh {
            let password = dbaas_crypto::random_alnum(24);
            let port = match opts.port {
                Some(p) => p,
                None => free_port()?,
            };
            (password, port)
        } else {
            let password = fs::read_to_string(root.join("password")).context("reading the cluster password")?;
            let port: u16 = fs::read_to_string(root.join("port"))
                .context("reading the cluster port")?
                .trim()
                .parse()
                .context("port file")?;
            (password.trim().to_string(), opts.port.unwrap_or(port))
        };
        let mut cluster = Self { root: root.clone(), bin, run_as, port, password, ca_cert: None, stop_on_drop: true };
        if fresh {
            cluster.init(opts)?;
        } else if cluster.running()? {
            // Left running by a process that died without stopping it (kill -9): this data
            // directory is ours, so stop that server cleanly and start it again with the
            // configuration written below (else pg_ctl start fails: another server running).
            cluster.stop()?;
        }
        cluster.write_config(opts)?;
        if opts.tls {
            cluster.ca_cert = Some(fs::read_to_string(data.join("ca.crt")).context("reading ca.crt")?);
        }
        cluster.pg_ctl_start()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("pgdata")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    /// `postgres://postgres:…@127.0.0.1:port/<db>`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/{}", self.password, self.port, db)
    }

    /// Leave the server running when this value is dropped.
    pub fn keep_running(&mut self) {
        self.stop_on_drop = false;
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(&self.root).env("LC_ALL", "C.UTF-8").stdin(Stdio::null());
        if let Some(r) = self.run_as {
            cmd.uid(r.uid).gid(r.gid).env("HOME", &self.root);
        }
        cmd
    }

    fn own(&self, path: &Path) -> Result<()> {
        if let Some(r) = self.run_as {
            std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid))
                .with_context(|| format!("chown {}", path.display()))?;
        }
        Ok(())
    }

    fn init(&self, opts: &ClusterOptions) -> Result<()> {
        self.own(&self.root)?;
        let pwfile = self.root.join("password");
        write_private(&pwfile, &self.password)?;
        self.own(&pwfile)?;
        write_private(&self.root.join("port"), &self.port.to_string())?;
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--auth=scram-sha-256", "--data-checksums"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        let run = self.socket_dir();
        fs::create_dir_all(&run)?;
        self.own(&run)?;
        if opts.tls {
            self.write_certificates(opts.also_listen.as_ref().map(|(addr, _)| addr.as_str()))?;
        }
        Ok(())
    }

    /// A server certificate for loopback, and for `also` (the other address it listens on),
    /// so clients can verify it (`verify-full`) at either.
    fn write_certificates(&self, also: Option<&str>) -> Result<()> {
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
        names.extend(also.map(str::to_string));
        let c = crate::tlsgen::server_cert("dbaas local instance CA", &names)?;
        let data = self.data_dir();
        for (name, body) in [("server.crt", c.cert_pem), ("server.key", c.key_pem), ("ca.crt", c.ca_pem)] {
            let path = data.join(name);
            write_private(&path, &body)?;
            self.own(&path)?;
        }
        Ok(())
    }

    fn write_config(&self, opts: &ClusterOptions) -> Result<()> {
        let data = self.data_dir();
        let listen = match &opts.also_listen {
            Some((addr, _)) => format!("127.0.0.1,{addr}"),
            None => "127.0.0.1".to_string(),
        };
        let mut conf = format!(
            "# Written by dbaas-api; edits are overwritten at start.\n\
             listen_addresses = '{listen}'\nport = {}\nunix_socket_directories = '{}'\n\
             max_connections = 200\nshared_buffers = 32MB\npassword_encryption = 'scram-sha-256'\n\
             log_min_messages = warning\n",
            self.port,
            self.socket_dir().display()
        );
        if opts.throwaway {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let mut hba = String::from("# Written by dbaas-api.\nlocal all all scram-sha-256\n");
        if opts.tls {
            conf.push_str(
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n",
            );
            // Logins from the network must use TLS; the service's own admin may also use
            // plain TCP on loopback.
            hba.push_str("host all postgres 127.0.0.1/32 scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n");
        } else {
            hba.push_str("host all all 127.0.0.1/32 scram-sha-256\n");
        }
        if let Some((_, network)) = &opts.also_listen {
            let kind = if opts.tls { "hostssl" } else { "host" };
            hba.push_str(&format!("{kind} all all {network} scram-sha-256\n"));
        }
        let conf_path = data.join("dbaas.conf");
        fs::write(&conf_path, conf)?;
        self.own(&conf_path)?;
        let hba_path = data.join("pg_hba.conf");
        fs::write(&hba_path, hba)?;
        self.own(&hba_path)?;
        let main_conf = data.join("postgresql.conf");
        let text = fs::read_to_string(&main_conf)?;
        if !text.contains("include_if_exists = 'dbaas.conf'") {
            let mut f = fs::OpenOptions::new().append(true).open(&main_conf)?;
            writeln!(f, "\ninclude_if_exists = 'dbaas.conf'")?;
        }
        write_private(&self.root.join("port"), &self.port.to_string())?;
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<()> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.root.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .context("running pg_ctl start")?;
        if !out.status.success() {
            let log = fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            bail!(
                "pg_ctl start failed: {}\nserver.log (last lines):\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: sessions are disconnected).
    pub fn stop(&self) -> Result<()> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .output()
            .context("running pg_ctl stop")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.contains("PID file") && !err.contains("not running") {
                bail!("pg_ctl stop failed: {}", err.trim());
            }
        }
        Ok(())
    }

    /// Whether a server runs on this data directory (`pg_ctl status`: 0 running, 3 not).
    fn running(&self) -> Result<bool> {
        let out = self.command("pg_ctl").arg("-D").arg(self.data_dir()).arg("status").output()?;
        Ok(out.status.success())
    }

    /// Starts a stopped server again (same port, same files).
    pub fn restart(&self) -> Result<()> {
        self.pg_ctl_start()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stop_on_drop {
            if let Err(e) = self.stop() {
                eprintln!("warning: stopping the cluster in {}: {e:#}", self.root.display());
            }
        }
    }
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// The postgres user must reach the cluster directory through every parent: as others, or
/// through its group (a private data dir is `root:postgres 0710`).
fn check_traversable(dir: &Path, run_as: RunAs) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for anc in dir.ancestors().skip(1) {
        let meta = fs::metadata(anc)?;
        let mode = meta.permissions().mode();
        let by_group = meta.gid() == run_as.gid && mode & 0o010 != 0;
        let by_owner = meta.uid() == run_as.uid && mode & 0o100 != 0;
        if mode & 0o001 == 0 && !by_group && !by_owner {
            bail!(
                "{} is not traversable by the postgres user (mode {:o}); choose a data dir outside it, e.g. under /var/tmp",
                anc.display(),
                mode & 0o777
            );
        }
    }
    Ok(())
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
