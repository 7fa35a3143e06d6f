//! Test harness: a state database cloned per test (dbaas-testkit), a throwaway target cluster
//! and real `dbaas-api serve` processes, stopped when the harness is dropped (also when a test
//! fails).
#![allow(dead_code, clippy::unwrap_used)]

pub mod dev;
pub mod hosts;
pub mod portal;
pub mod proxy;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dbaas_api::crypto::MasterKey;
use dbaas_api::pgcluster::{free_port, Cluster, ClusterOptions};
use dbaas_client::*;
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_dbaas-api");

/// Fields drop in order: API processes, then clusters, then the directory holding them.
pub struct Harness {
    pub apis: Vec<ApiProcess>,
    pub admin_token: String,
    pub admin: Client,
    pub key: String,
    /// This test's own state database, cloned from the migrated template (dbaas-testkit).
    pub state: StateDb,
    pub target_pg: Cluster,
    pub dir: TempDir,
}

/// One API replica: a real `dbaas-api serve` process, or (for tests that never kill, stop or
/// read the log of a replica) the same server and engine in this test's own runtime.
pub struct ApiProcess {
    pub endpoint: String,
    run: Running,
}

enum Running {
    Process { child: Child, log: std::path::PathBuf },
    InProcess { shutdown: tokio_util::sync::CancellationToken },
}

impl ApiProcess {
    fn child(&mut self) -> &mut Child {
        match &mut self.run {
            Running::Process { child, .. } => child,
            Running::InProcess { .. } => panic!("this harness runs the API in-process: use Harness::start for faults"),
        }
    }
    pub fn pid(&self) -> i32 {
        match &self.run {
            Running::Process { child, .. } => child.id() as i32,
            Running::InProcess { .. } => panic!("an in-process API has no process id"),
        }
    }
    /// The process's log (stderr).
    pub fn log(&self) -> &std::path::Path {
        match &self.run {
            Running::Process { log, .. } => log,
            Running::InProcess { .. } => panic!("an in-process API has no log file"),
        }
    }
    /// SIGKILL: no graceful anything.
    pub fn kill(&mut self) {
        let child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let child = self.child();
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        child.wait().unwrap()
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        match &mut self.run {
            Running::Process { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::InProcess { shutdown } => shutdown.cancel(),
        }
    }
}

/// Options for API processes started by the harness.
#[derive(Clone)]
pub struct ApiOptions {
    pub workers: usize,
    pub lease_ms: u64,
    pub step_delay_ms: u64,
    /// Extra environment of the API process.
    pub env: Vec<(String, String)>,
    /// Serve from this test's runtime instead of a process (no env, no faults, no log file).
    pub in_process: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self { workers: 4, lease_ms: 3000, step_delay_ms: 0, env: Vec::new(), in_process: false }
    }
}

impl ApiOptions {
    /// The engine settings `spawn_api` gives a process through its environment.
    fn engine(&self) -> dbaas_api::state::EngineConfig {
        dbaas_api::state::EngineConfig {
            workers: self.workers,
            lease: Duration::from_millis(self.lease_ms),
            poll_interval: Duration::from_millis(500),
            reaper_interval: Duration::from_millis(500),
            delete_grace: Duration::from_millis(1000),
            scheduler_interval: Duration::from_millis(300),
            min_schedule_interval: Duration::from_secs(1),
            metrics_interval: Duration::from_millis(1000),
            drift_interval: Duration::from_millis(1000),
            ..Default::default()
        }
    }
}

#[allow(unused_imports)]
pub use dbaas_testkit::{connect_as, sqlstate, tempdir, wait_until, StateDb};

impl Harness {
    /// The API as a real process (what SIGKILL, SIGSTOP and log checks need).
    pub async fn start() -> Self {
        Self::start_with(ApiOptions::default()).await
    }

    /// The API served from this test's runtime: the same router, engine and loops, started
    /// faster, for tests that only talk HTTP and look at targets.
    pub async fn in_process() -> Self {
        Self::start_with(ApiOptions { in_process: true, ..Default::default() }).await
    }

    pub async fn start_with(opts: ApiOptions) -> Self {
        let dir = tempdir();
        let state = dbaas_testkit::state_db().await;
        let target_pg = Cluster::start(
            &dir.path().join("target"),
            &ClusterOptions { tls: true, throwaway: true, ..Default::default() },
        )
        .expect("target cluster");
        lock_down(&target_pg).await;
        let key = MasterKey::generate_base64();
        let mut h = Self {
            dir,
            state,
            target_pg,
            key,
            apis: Vec::new(),
            admin_token: String::new(),
            admin: Client::new("http://127.0.0.1:1", "x").unwrap(),
        };
        let out = Command::new(BIN)
            .args(["token", "create", "--admin", "--description", "test admin"])
            .env("DATABASE_URL", h.state.url.clone())
            .output()
            .expect("token create");
        assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
        h.admin_token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        h.spawn_api(opts).await;
        h.admin = Client::new(&h.apis[0].endpoint, &h.admin_token).unwrap();
        let main = CreateInstance {
            labels: BTreeMap::from([("tier".to_string(), "gold".to_string())]),
            max_databases: 100,
            allowed_extensions: vec!["pgcrypto".into(), "citext".into()],
            ..instance_req(&h.target_pg, "main")
        };
        h.admin.create_instance(&main).await.expect("register instance");
        h
    }

    /// Starts one more `dbaas-api serve` on the same state database.
    pub async fn spawn_api(&mut self, opts: ApiOptions) -> usize {
        if opts.in_process {
            return self.serve_in_process(opts).await;
        }
        let hooks = opts.step_delay_ms > 0 || opts.env.iter().any(|(k, _)| k.starts_with("DBAAS_TEST_"));
        assert!(
            !hooks || cfg!(feature = "test-hooks"),
            "this test injects faults: run it with --features dbaas-api/test-hooks (bash scripts/test.sh does)"
        );
        let port = free_port().unwrap();
        let log = self.dir.path().join(format!("api-{port}.log"));
        let child = Command::new(BIN)
            .arg("serve")
            .env("DATABASE_URL", self.state.url.clone())
            .env("DBAAS_MASTER_KEY", &self.key)
            .env("DBAAS_LISTEN", format!("127.0.0.1:{port}"))
            .env("DBAAS_WORKERS", opts.workers.to_string())
            .env("DBAAS_OP_LEASE_MS", opts.lease_ms.to_string())
            .env("DBAAS_POLL_INTERVAL_MS", "500")
            .env("DBAAS_REAPER_INTERVAL_MS", "500")
            .env("DBAAS_DELETE_GRACE_MS", "1000")
            .env("DBAAS_SCHEDULER_INTERVAL_MS", "300")
            .env("DBAAS_METRICS_INTERVAL_MS", "1000")
            .env("DBAAS_DRIFT_INTERVAL_MS", "1000")
            // Tests fire schedules every couple of seconds; production's floor is an hour.
            .env("DBAAS_MIN_SCHEDULE_INTERVAL_SECS", "1")
            .env("DBAAS_TEST_STEP_DELAY_MS", opts.step_delay_ms.to_string())
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn dbaas-api");
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_ready(&endpoint, || std::fs::read_to_string(&log).unwrap_or_default()).await;
        self.apis.push(ApiProcess { endpoint, run: Running::Process { child, log } });
        self.apis.len() - 1
    }

    async fn serve_in_process(&mut self, opts: ApiOptions) -> usize {
        assert!(opts.env.is_empty() && opts.step_delay_ms == 0, "environment and fault hooks need a process");
        let key = MasterKey::from_base64(&self.key).unwrap();
        let engine = opts.engine();
        let db = dbaas_api::server::connect_state_db(&self.state.url).await.unwrap();
        let mut state = dbaas_api::server::state(db, key, engine);
        state.engine_db = dbaas_api::server::connect_engine_db(&self.state.url, opts.workers).await.unwrap();
        let port = free_port().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = dbaas_api::server::serve(state, ([127, 0, 0, 1], port).into(), stop).await {
                panic!("in-process API: {e:#}");
            }
        });
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_ready(&endpoint, String::new).await;
        self.apis.push(ApiProcess { endpoint, run: Running::InProcess { shutdown } });
        self.apis.len() - 1
    }

    pub fn endpoint(&self) -> &str {
        &self.apis[0].endpoint
    }

    /// The state database, for checks only the store can answer (exactly-once, nothing left).
    pub async fn state_db(&self) -> PgConnection {
        PgConnection::connect(&self.state.url).await.unwrap()
    }

    /// The target instance as its superuser.
    pub async fn target_db(&self, db: &str) -> PgConnection {
        PgConnection::connect(&self.target_pg.url(db)).await.unwrap()
    }

    pub async fn tenant(&self, name: &str) -> Client {
        self.admin.create_tenant(&CreateTenant { name: name.into(), max_databases: None }).await.unwrap();
        let tok =
            self.admin.create_token(&CreateToken { tenant: Some(name.into()), ..Default::default() }).await.unwrap();
        self.admin.with_token(&tok.secret)
    }

    /// Creates a database and waits for it to be ready.
    pub async fn ready_database(&self, client: &Client, req: CreateDatabase) -> Database {
        let acc = client.create_database(&req).await.expect("create database");
        let op = client.wait_operation(acc.operation.unwrap().id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
        client.get_database(acc.database.id).await.unwrap()
    }

    /// The drift the background reconciler stored for a database once it compared it after
    /// `since` (it runs every second in tests).
    pub async fn reconciled_drift(client: &Client, id: uuid::Uuid, since: chrono::DateTime<chrono::Utc>) -> Drift {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(drift) = client.get_database(id).await.unwrap().drift {
                if drift.checked_at.is_some_and(|t| t > since) {
                    return drift;
                }
            }
            assert!(Instant::now() < deadline, "the reconciler did not compare {id} within 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let mut c = self.state_db().await;
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }

    pub async fn target_roles_like(&self, pattern: &str) -> Vec<String> {
        let mut c = self.target_db("postgres").await;
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 ORDER BY 1")
            .bind(pattern)
            .fetch_all(&mut c)
            .await
            .unwrap()
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

/// The target server registered as an external sandbox instance called `name` exactly as
/// `dev` registers its `local` (verify-full with the cluster's CA; no labels, room for 10
/// databases); callers override what they test.
pub fn instance_req(target: &Cluster, name: &str) -> CreateInstance {
    assert!(target.ca_cert.is_some(), "test instances serve TLS, as dev's do");
    CreateInstance { max_databases: 10, ..dbaas_api::dev::instance_request(target, name) }
}

pub fn db_req(name: &str) -> CreateDatabase {
    CreateDatabase { name: name.into(), instance: Some("main".into()), ..Default::default() }
}

/// Revokes PUBLIC's CONNECT on the maintenance databases, as `dev` does for its instance.
/// Waits for `/readyz`; `why` says what went wrong when it never comes.
async fn wait_ready(endpoint: &str, why: impl Fn() -> String) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{endpoint}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "API did not become ready: {}", why());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn lock_down(pg: &Cluster) {
    let mut c = PgConnection::connect(&pg.url("postgres")).await.unwrap();
    sqlx::raw_sql(
        "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC; REVOKE CONNECT ON DATABASE template1 FROM PUBLIC",
    )
    .execute(&mut c)
    .await
    .unwrap();
}

/// An operation's log lines, one per line (for assertion messages and checks).
pub async fn log_of(c: &Client, op: uuid::Uuid) -> String {
    c.operation_logs(op).await.unwrap().iter().map(|l| l.message.clone()).collect::<Vec<_>>().join("\n")
}

/// A filesystem backup store `fs` serving every environment, in a directory of its own (kept
/// as long as the returned handle).
pub async fn with_store(h: &Harness) -> TempDir {
    let dir = tempdir();
    let path = dir.path().to_str().unwrap().to_string();
    let envs = vec![Environment::Sandbox, Environment::Preprod, Environment::Prod];
    h.admin.create_backup_store(&CreateBackupStore::filesystem("fs", &path, envs)).await.unwrap();
    dir
}
