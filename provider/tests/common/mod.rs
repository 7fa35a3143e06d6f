//! Acceptance-test harness: real PostgreSQL clusters, the real API served in-process on a
//! free port, the provider installed in a filesystem mirror, and the real `terraform`.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dbaas_api::pgcluster::{free_port, Cluster, ClusterOptions};
use dbaas_client::*;
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const PROVIDER: &str = env!("CARGO_BIN_EXE_terraform-provider-dbaas");
pub const VERSION: &str = "0.1.0";

/// Fields drop in order: stop the API, then the clusters, then remove the directory.
pub struct Env {
    stop: CancellationToken,
    pub endpoint: String,
    pub token: String,
    pub admin: Client,
    pub target: Cluster,
    /// This test's own state database, cloned from the migrated template (dbaas-testkit).
    state: dbaas_testkit::StateDb,
    pub dir: TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn terraform_bin() -> String {
    std::env::var("TERRAFORM").unwrap_or_else(|_| "terraform".into())
}

/// The provider in a filesystem mirror under `dir`, and `dir/cli.tfrc` pointing at it: the
/// way `terraform init` finds it with no network.
pub fn install_provider(dir: &Path) {
    let mirror = dir.join("mirror/registry.terraform.io/dbaas/dbaas").join(VERSION).join("linux_amd64");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::copy(PROVIDER, mirror.join(format!("terraform-provider-dbaas_v{VERSION}"))).unwrap();
    std::fs::write(
        dir.join("cli.tfrc"),
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n    include = [\"registry.terraform.io/dbaas/dbaas\"]\n  }}\n}}\n",
            dir.join("mirror").display()
        ),
    )
    .unwrap();
}

/// `terraform <args> -no-color` in `wd` with the provider of `install_provider(dir)` and only
/// the dbaas environment given in `env`.
pub fn terraform(dir: &Path, wd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(terraform_bin());
    cmd.current_dir(wd)
        .args(args)
        .arg("-no-color")
        .env("TF_CLI_CONFIG_FILE", dir.join("cli.tfrc"))
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .env_remove("DBAAS_ENDPOINT")
        .env_remove("DBAAS_TOKEN")
        .env_remove("DBAAS_CA_CERT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

impl Env {
    pub async fn start() -> Self {
        Self::start_with(std::time::Duration::ZERO).await
    }

    /// `step_delay` slows every operation step (fault injection for timeout tests).
    pub async fn start_with(step_delay: std::time::Duration) -> Self {
        let dir = dbaas_testkit::tempdir();
        let state = dbaas_testkit::state_db().await;
        let target = Cluster::start(
            &dir.path().join("target"),
            &ClusterOptions { tls: true, throwaway: true, ..Default::default() },
        )
        .unwrap();
        let mut c = PgConnection::connect(&target.url("postgres")).await.unwrap();
        sqlx::raw_sql("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC").execute(&mut c).await.unwrap();

        let db = dbaas_api::server::connect_state_db(&state.url).await.unwrap();
        let key = dbaas_api::crypto::MasterKey::from_base64(&dbaas_api::crypto::MasterKey::generate_base64()).unwrap();
        let engine = dbaas_api::state::EngineConfig {
            poll_interval: std::time::Duration::from_millis(300),
            step_delay,
            scheduler_interval: std::time::Duration::from_millis(300),
            // The schedule test fires every 2 s; production's floor is an hour.
            min_schedule_interval: std::time::Duration::from_secs(1),
            drift_interval: std::time::Duration::from_millis(1000),
            ..Default::default()
        };
        let app = dbaas_api::server::state(db.clone(), key, engine);
        let token = dbaas_api::store::tokens::issue(&db, None, "terraform tests", None).await.unwrap().secret;
        dbaas_api::catalog::registration::register(
            &app,
            CreateInstance {
                allowed_extensions: vec!["pgcrypto".into(), "citext".into()],
                ..dbaas_api::dev::instance_request(&target, "main")
            },
        )
        .await
        .unwrap();
        let port = free_port().unwrap();
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move { dbaas_api::server::serve(app, ([127, 0, 0, 1], port).into(), s).await });
        let endpoint = format!("http://127.0.0.1:{port}");
        let admin = Client::new(&endpoint, &token).unwrap();
        for _ in 0..100 {
            if admin.list_instances().await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }

        install_provider(dir.path());
        Self { stop, endpoint, token, admin, target, state, dir }
    }

    /// A working directory with `main.tf` = the provider requirement + `body`.
    pub fn workdir(&self, name: &str, body: &str) -> PathBuf {
        let wd = self.dir.path().join(name);
        std::fs::create_dir_all(&wd).unwrap();
        self.write(&wd, body);
        let out = self.tf(&wd, &["init", "-input=false"]);
        assert!(out.status.success(), "terraform init: {}", text(&out));
        wd
    }

    pub fn write(&self, wd: &Path, body: &str) {
        let header = format!(
            "terraform {{\n  required_providers {{\n    dbaas = {{\n      source  = \"dbaas/dbaas\"\n      version = \"{VERSION}\"\n    }}\n  }}\n}}\n\n"
        );
        std::fs::write(wd.join("main.tf"), header + body).unwrap();
    }

    /// Runs terraform with the provider pointed at our API (through the environment).
    pub fn tf(&self, wd: &Path, args: &[&str]) -> Output {
        self.tf_env(wd, args, &[("DBAAS_ENDPOINT", &self.endpoint), ("DBAAS_TOKEN", &self.token)])
    }

    pub fn tf_env(&self, wd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        terraform(self.dir.path(), wd, args, env).output().unwrap()
    }

    pub fn apply(&self, wd: &Path) -> String {
        let out = self.tf(wd, &["apply", "-auto-approve", "-input=false"]);
        assert!(out.status.success(), "terraform apply failed:\n{}", text(&out));
        text(&out)
    }

    /// `terraform plan -detailed-exitcode`: 0 = no changes, 2 = changes.
    pub fn plan(&self, wd: &Path) -> (i32, String) {
        let out = self.tf(wd, &["plan", "-input=false", "-detailed-exitcode"]);
        (out.status.code().unwrap_or(-1), text(&out))
    }

    pub fn outputs(&self, wd: &Path) -> serde_json::Value {
        let out = self.tf(wd, &["output", "-json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub async fn target_db(&self, db: &str) -> PgConnection {
        PgConnection::connect(&self.target.url(db)).await.unwrap()
    }

    pub async fn target_has_db(&self, name: &str) -> bool {
        let mut c = self.target_db("postgres").await;
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut c)
            .await
            .unwrap()
    }
}

/// Stops clusters left under a host's data root when dropped (also when a test fails).
pub struct HostClusters(pub PathBuf);

impl Drop for HostClusters {
    fn drop(&mut self) {
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let data = e.path().join("pgdata");
            if data.join("postmaster.pid").exists() {
                let _ = Command::new("/usr/sbin/runuser")
                    .args([
                        "-u",
                        "postgres",
                        "--",
                        "/usr/lib/postgresql/15/bin/pg_ctl",
                        "stop",
                        "-m",
                        "immediate",
                        "-D",
                    ])
                    .arg(&data)
                    .output();
            }
        }
    }
}

/// Instance directories under a data root.
pub fn instance_dirs(root: &Path) -> usize {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count()
}

impl Env {
    /// Registers this machine as a `local` host for managed instances.
    pub async fn local_host(&self, name: &str, ports: [u16; 2]) -> HostClusters {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = self.dir.path().join(format!("host-{name}"));
        self.admin.create_host(&CreateHost::local(name, root.to_str().unwrap(), ports)).await.unwrap();
        HostClusters(root)
    }
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Connects with a URI as a client would (TLS required).
pub async fn connect(uri: &str) -> Result<PgConnection, sqlx::Error> {
    let opts: sqlx::postgres::PgConnectOptions = uri.parse()?;
    PgConnection::connect_with(&opts.ssl_mode(sqlx::postgres::PgSslMode::Require)).await
}
