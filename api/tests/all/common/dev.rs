//! `dbaas-api dev` as a process: started on a data dir, ready when `/readyz` answers, its
//! admin token read from the env file it writes, stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use dbaas_client::Client;

use super::{tempdir, BIN};

/// Starts `dbaas-api dev` on `dir` and `port` (stdout/stderr next to the dir).
pub fn start_dev(dir: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    start_dev_with(dir, port, proxy_port(), env)
}

/// A free port for a dev's routing proxy: outside the ephemeral range (registration refuses
/// those) and never handed out twice by this process.
pub fn proxy_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(26100);
    loop {
        let p = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(p < 26400, "no free proxy port left");
        if std::net::TcpListener::bind(("0.0.0.0", p)).is_ok() {
            return p;
        }
    }
}

pub fn start_dev_with(dir: &Path, port: u16, proxy_port: u16, env: &[(&str, &str)]) -> Child {
    Command::new(BIN)
        .args(["dev", "--data-dir"])
        .arg(dir)
        .args(["--port", &port.to_string(), "--proxy-port", &proxy_port.to_string()])
        .env("DBAAS_POLL_INTERVAL_MS", "500")
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(dir.with_extension("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.with_extension("stderr")).unwrap())
        .spawn()
        .unwrap()
}

pub async fn wait_ready(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{endpoint}/readyz")).await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "dev mode did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of `export KEY=` in the env file dev writes.
pub fn env_of(text: &str, key: &str) -> String {
    text.lines().find_map(|l| l.strip_prefix(&format!("export {key}="))).unwrap().trim().to_string()
}

pub fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait().unwrap()
}

/// A running `dbaas-api dev` in a directory of its own; SIGTERM on drop.
pub struct Dev {
    pub child: Child,
    pub endpoint: String,
    pub token: String,
    pub admin: Client,
    pub dir: PathBuf,
    /// Its routing proxy's port (host `local`).
    pub proxy_port: u16,
    _tmp: tempfile::TempDir,
}

impl Dev {
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let tmp = tempdir();
        let dir = tmp.path().join("dev");
        let port = dbaas_api::pgcluster::free_port().unwrap();
        let proxy_port = proxy_port();
        let child = start_dev_with(&dir, port, proxy_port, env);
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_ready(&endpoint).await;
        let token = env_of(&std::fs::read_to_string(dir.join("env")).unwrap(), "DBAAS_TOKEN");
        let admin = Client::new(&endpoint, &token).unwrap();
        Self { child, endpoint, token, admin, dir, proxy_port, _tmp: tmp }
    }

    /// Stops dev's `local` instance behind the service's back (`pg_ctl stop` as postgres).
    pub fn stop_local_instance(&self) {
        let bin = dbaas_api::pgcluster::find_bin_dir().unwrap().join("pg_ctl");
        let out = Command::new("runuser")
            .current_dir("/")
            .args(["-u", "postgres", "--"])
            .arg(bin)
            .arg("-D")
            .arg(self.dir.join("local/pgdata"))
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // Not when a test already stopped it (its pid may be reused by now).
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = sigterm(&mut self.child);
        }
    }
}
