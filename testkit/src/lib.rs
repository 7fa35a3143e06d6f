//! What the API's and the provider's tests share.
//!
//! - [`tempdir`]: a throwaway directory the postgres user can reach (clusters run as it when
//!   the tests run as root).
//! - [`state_db`]: a state database of its own for each test, cloned with
//!   `CREATE DATABASE … TEMPLATE` from a template migrated once per test process, on one
//!   throwaway cluster per test process. Cloning takes milliseconds where a cluster of its own
//!   took an initdb and every migration. Databases are separate for LISTEN/NOTIFY and advisory
//!   locks, so tests running side by side do not see each other. A watchdog process stops the
//!   cluster and removes its files when the test process ends (statics are never dropped).
//! - [`s3::S3Server`]: a real S3-protocol server (moto) on loopback.
//! - [`connect_as`], [`sqlstate`], [`wait_until`]: connecting like a client, reading an
//!   error's SQLSTATE, waiting for a condition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod oidc;
pub mod s3;

use std::path::Path;
use std::time::{Duration, Instant};

use dbaas_api::pgcluster::{Cluster, ClusterOptions};
use dbaas_client::Credential;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;
use tokio::sync::OnceCell;

const BASE: &str = "/var/tmp/dbaas-tests";
const TEMPLATE: &str = "dbaas_template";

/// A directory the postgres user can reach, removed when dropped.
pub fn tempdir() -> TempDir {
    let base = Path::new(BASE);
    std::fs::create_dir_all(base).unwrap();
    std::fs::set_permissions(base, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    tempfile::Builder::new().prefix("t").tempdir_in(base).unwrap()
}

/// The per-process cluster holding the template.
struct Shared {
    port: u16,
    password: String,
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();

/// A test's own state database: migrated, empty.
#[derive(Debug, Clone)]
pub struct StateDb {
    /// `postgres://…@127.0.0.1:<port>/<database>`
    pub url: String,
    pub port: u16,
}

async fn shared() -> &'static Shared {
    SHARED
        .get_or_init(|| async {
            let dir = tempdir().keep();
            let cluster = tokio::task::spawn_blocking(move || {
                let mut c =
                    Cluster::start(&dir.join("state"), &ClusterOptions { throwaway: true, ..Default::default() })
                        .expect("state cluster");
                c.keep_running();
                watchdog(&dir);
                c
            })
            .await
            .unwrap();
            let admin = cluster.url("postgres");
            let mut conn = PgConnection::connect(&admin).await.unwrap();
            sqlx::raw_sql(&format!("CREATE DATABASE {TEMPLATE}")).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            let template = cluster.url(TEMPLATE);
            let pool = dbaas_api::server::connect_state_db(&template).await.expect("migrating the template");
            pool.close().await;
            Shared { port: cluster.port, password: cluster.password.clone() }
        })
        .await
}

/// Stops the cluster under `dir` and removes it once this process is gone.
fn watchdog(dir: &Path) {
    let bin = dbaas_api::pgcluster::find_bin_dir().unwrap();
    let data = dir.join("state").join("pgdata");
    let as_postgres = if std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n") {
        "/usr/sbin/runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {as_postgres}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    // Never waited for on purpose: it outlives this process (its parent becomes init).
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("state cluster watchdog");
}

/// A fresh, migrated state database for one test.
pub async fn state_db() -> StateDb {
    let s = shared().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let url = |db: &str| format!("postgres://postgres:{}@127.0.0.1:{}/{db}", s.password, s.port);
    let mut conn = PgConnection::connect(&url("postgres")).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}")).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    StateDb { url: url(&name), port: s.port }
}

/// Connects with a credential the way a client would: TLS required.
pub async fn connect_as(cred: &Credential) -> Result<PgConnection, sqlx::Error> {
    let opts: PgConnectOptions = cred.uri.parse()?;
    PgConnection::connect_with(&opts.ssl_mode(PgSslMode::Require)).await
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.to_string()).unwrap_or_else(|| format!("no sqlstate: {e}"))
}

/// Polls `f` every 200 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
