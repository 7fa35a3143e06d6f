//! Test hosts for managed instances: a data root whose clusters are stopped when the test
//! ends (also when it fails), and a real OpenSSH server on loopback.
#![allow(dead_code, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dbaas_client::*;
use tempfile::TempDir;

use super::{tempdir, Harness};

/// A host data root. Dropping it stops every cluster provisioned under it.
pub struct HostDir {
    pub dir: TempDir,
}

impl HostDir {
    pub fn new() -> Self {
        let dir = tempdir();
        // The postgres user must reach the data root through this directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    pub fn root(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_string()
    }

    /// Instance directories present under the data root (dot-directories excluded).
    pub fn instance_dirs(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.root()) else { return vec![] };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        // The host's routing proxy, when it runs one.
        let pidfile = Path::new(&self.root()).join(".proxy/pgbouncer.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGINT);
        }
        // The binaries the clusters were made with (found, not a fixed version).
        let Ok(bin) = dbaas_api::pgcluster::find_bin_dir() else { return };
        let pg_ctl = bin.join("pg_ctl").to_string_lossy().into_owned();
        for name in self.instance_dirs() {
            let data = Path::new(&self.root()).join(name).join("pgdata");
            if data.join("postmaster.pid").exists() {
                let _ = Command::new("/usr/sbin/runuser")
                    .args(["-u", "postgres", "--", &pg_ctl, "stop", "-m", "immediate", "-D"])
                    .arg(&data)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// The request registering the API's own machine as a `local` host.
pub fn local_req(name: &str, data_root: &str, ports: [u16; 2]) -> CreateHost {
    CreateHost::local(name, data_root, ports)
}

/// Registers the API's own machine as a `local` host with its own port range.
pub async fn local_host(h: &Harness, name: &str, ports: [u16; 2]) -> (HostDir, Host) {
    let dir = HostDir::new();
    let host = h.admin.create_host(&local_req(name, &dir.root(), ports)).await.expect("register local host");
    (dir, host)
}

/// Waits for the instance's latest operation and returns it with the instance.
pub async fn settle(client: &Client, name: &str) -> (Operation, Instance) {
    let inst = client.get_instance(name).await.unwrap();
    let op =
        client.wait_operation(inst.last_operation_id.expect("an operation"), Duration::from_secs(120)).await.unwrap();
    (op, client.get_instance(name).await.unwrap())
}

/// A managed PostgreSQL 15 sandbox instance on `host`.
pub fn managed(name: &str, host: &str) -> CreateInstance {
    CreateInstance::managed(name, host, "15", Environment::Sandbox)
}

pub fn settings(pairs: &[(&str, &str)]) -> Settings {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub async fn show(c: &mut sqlx::PgConnection, name: &str) -> String {
    sqlx::query_scalar(&format!("SHOW {name}")).fetch_one(c).await.unwrap()
}

/// The problem document of a failed call.
pub fn problem(e: &ClientError) -> &Problem {
    e.problem().unwrap_or_else(|| panic!("not a problem: {e}"))
}

pub async fn log_text(client: &Client, op: uuid::Uuid) -> String {
    client.operation_logs(op).await.unwrap().iter().map(|l| l.message.clone()).collect::<Vec<_>>().join("\n")
}

/// Whether something accepts TCP connections on 127.0.0.1:port.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// An OpenSSH server on 127.0.0.1 with its own host key, accepting only one client key.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub host_key: String,
    pub client_key: String,
    pub dir: TempDir,
}

fn keygen(path: &Path) -> (String, String) {
    let out = Command::new("/usr/bin/ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dbaas-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let private = std::fs::read_to_string(path).unwrap();
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (private, public.trim().to_string())
}

impl Sshd {
    pub fn start() -> Self {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(sshd.exists(), "openssh-server is not installed (scripts/ensure-deps.sh installs it)");
        let dir = tempdir();
        let (_, host_pub) = keygen(&dir.path().join("host_key"));
        let (client_priv, client_pub) = keygen(&dir.path().join("client_key"));
        std::fs::write(dir.path().join("authorized_keys"), format!("{client_pub}\n")).unwrap();
        // Privilege separation needs this directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = super::free_port().unwrap();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n\
                 MaxSessions 50\nMaxStartups 50\nLogLevel VERBOSE\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(port) {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, host_key: host_pub, client_key: client_priv, dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Another key, for "wrong host key" checks.
    pub fn other_key(&self) -> String {
        keygen(&self.dir.path().join(format!("other_{}", self.port))).1
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
