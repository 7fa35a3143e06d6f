//! Command line: `serve`, `dev`, `migrate`, `token create`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::crypto::MasterKey;
use crate::state::EngineConfig;

#[derive(Debug, Parser)]
#[command(name = "dbaas-api", version, about = "Self-service PostgreSQL databases: the orchestration API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Production mode: serve against DATABASE_URL with the operator's master key.
    Serve(ServeArgs),
    /// Embedded default: local state PostgreSQL and a local instance, started for you.
    Dev(DevArgs),
    /// Apply the state database migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Print the OpenAPI document (JSON), or the API reference as Markdown.
    Openapi {
        #[arg(long)]
        markdown: bool,
    },
    /// Manage API tokens directly in the state database.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write a backup's dump (pg_dump custom format) to standard output, unsealed with the
    /// master key: the manual restore path (`dbaas-api backup-open <id> | pg_restore -d …`).
    BackupOpen(BackupOpenArgs),
}

#[derive(Debug, Args)]
pub struct BackupOpenArgs {
    /// The state database. Without it (and without a master key), the running `dev`'s: its
    /// data dir holds both.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// `dev`'s data dir, read when no database URL is given.
    #[arg(long, env = "DBAAS_DEV_DIR", default_value = "/var/tmp/dbaas-dev")]
    pub dev_dir: PathBuf,
    #[arg(long, env = "DBAAS_MASTER_KEY", hide_env_values = true, conflicts_with = "master_key_file")]
    pub master_key: Option<String>,
    #[arg(long, env = "DBAAS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The backup's id.
    pub backup: uuid::Uuid,
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Concurrent operations run by this process.
    #[arg(long, env = "DBAAS_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// Claim lease of an operation, in milliseconds (a dead worker's operations resume after it).
    #[arg(long, env = "DBAAS_OP_LEASE_MS", default_value_t = 30_000)]
    pub op_lease_ms: u64,
    /// Polling fallback for new operations, in milliseconds.
    #[arg(long, env = "DBAAS_POLL_INTERVAL_MS", default_value_t = 2_000)]
    pub poll_interval_ms: u64,
    /// How often expired leases are revoked, in milliseconds.
    #[arg(long, env = "DBAAS_REAPER_INTERVAL_MS", default_value_t = 5_000)]
    pub reaper_interval_ms: u64,
    /// Default grace period for sessions of a database being deleted, in milliseconds.
    #[arg(long, env = "DBAAS_DELETE_GRACE_MS", default_value_t = 5_000)]
    pub delete_grace_ms: u64,
    /// How often due maintenance schedules are looked for, in milliseconds.
    #[arg(long, env = "DBAAS_SCHEDULER_INTERVAL_MS", default_value_t = 5_000)]
    pub scheduler_interval_ms: u64,
    /// How often managed instances are health-checked, in milliseconds.
    #[arg(long, env = "DBAAS_HEALTH_INTERVAL_MS", default_value_t = 15_000)]
    pub health_interval_ms: u64,
    /// Operations one tenant may have running at once, across all replicas.
    #[arg(long, env = "DBAAS_TENANT_CONCURRENCY", default_value_t = 2)]
    pub tenant_concurrency: usize,
    /// The shortest interval between two runs of a maintenance schedule, in seconds.
    #[arg(long, env = "DBAAS_MIN_SCHEDULE_INTERVAL_SECS", default_value_t = 3600)]
    pub min_schedule_interval_secs: u64,
    /// Default statement timeout of maintenance work (VACUUM, REINDEX, pg_repack), in seconds.
    #[arg(long, env = "DBAAS_MAINTENANCE_STATEMENT_TIMEOUT_SECS", default_value_t = 6 * 3600)]
    pub maintenance_statement_timeout_secs: u64,
    /// Days operation logs, audit rows and schedule runs are kept.
    #[arg(long, env = "DBAAS_RETENTION_DAYS", default_value_t = 90)]
    pub retention_days: u64,
    /// How often old rows are purged, in milliseconds.
    #[arg(long, env = "DBAAS_PURGE_INTERVAL_MS", default_value_t = 3_600_000)]
    pub purge_interval_ms: u64,
    /// How often each instance's metrics are collected, in milliseconds (once per interval
    /// across all replicas; scrapes read the last collection).
    #[arg(long, env = "DBAAS_METRICS_INTERVAL_MS", default_value_t = 15_000)]
    pub metrics_interval_ms: u64,
    /// How often each instance's catalog is compared with the database records, in
    /// milliseconds (once per interval across replicas; GET serves the last result).
    #[arg(long, env = "DBAAS_DRIFT_INTERVAL_MS", default_value_t = 60_000)]
    pub drift_interval_ms: u64,
    /// Validity of the server certificates of managed instances, in days.
    #[arg(long, env = "DBAAS_CERT_VALIDITY_DAYS", default_value_t = 90)]
    pub cert_validity_days: u64,
    /// Renew a managed instance's certificate when it expires within this many days.
    #[arg(long, env = "DBAAS_CERT_RENEW_BEFORE_DAYS", default_value_t = 30)]
    pub cert_renew_before_days: u64,
    /// At shutdown (SIGTERM), how long running operations may go on before their attempts
    /// are stopped and handed back to the queue, in milliseconds.
    #[arg(long, env = "DBAAS_SHUTDOWN_GRACE_MS", default_value_t = 20_000)]
    pub shutdown_grace_ms: u64,
    /// Mark the portal's cookies Secure although this process serves plain HTTP (a load
    /// balancer in front terminates TLS). Serving HTTPS itself always marks them.
    #[arg(long, env = "DBAAS_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,
    /// Tests: certificate validity and renewal window in seconds (override the days).
    #[cfg(feature = "test-hooks")]
    #[arg(long, env = "DBAAS_TEST_CERT_SECS", value_delimiter = ',', hide = true)]
    pub test_cert_secs: Vec<u64>,
    /// Fault injection for tests: pause before each operation step, in milliseconds.
    #[cfg(feature = "test-hooks")]
    #[arg(long, env = "DBAAS_TEST_STEP_DELAY_MS", default_value_t = 0, hide = true)]
    pub test_step_delay_ms: u64,
}

impl EngineArgs {
    pub fn config(&self) -> Result<EngineConfig> {
        if self.workers == 0 || self.workers > 64 {
            bail!("--workers must be 1-64");
        }
        if self.op_lease_ms < 1000 {
            bail!("--op-lease-ms must be at least 1000");
        }
        if self.tenant_concurrency == 0 {
            bail!("--tenant-concurrency must be at least 1");
        }
        if self.retention_days == 0 {
            bail!("--retention-days must be at least 1");
        }
        #[allow(unused_mut)]
        let (mut validity, mut renew_before) = (self.cert_validity_days * 86_400, self.cert_renew_before_days * 86_400);
        #[cfg(feature = "test-hooks")]
        if let [v, r] = self.test_cert_secs[..] {
            (validity, renew_before) = (v, r);
        }
        if renew_before >= validity {
            bail!("--cert-renew-before-days must be shorter than --cert-validity-days");
        }
        Ok(EngineConfig {
            cert_validity: Duration::from_secs(validity),
            cert_renew_before: Duration::from_secs(renew_before),
            workers: self.workers,
            lease: Duration::from_millis(self.op_lease_ms),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(50)),
            reaper_interval: Duration::from_millis(self.reaper_interval_ms.max(100)),
            delete_grace: Duration::from_millis(self.delete_grace_ms),
            scheduler_interval: Duration::from_millis(self.scheduler_interval_ms.max(100)),
            #[cfg(feature = "test-hooks")]
            step_delay: Duration::from_millis(self.test_step_delay_ms),
            health_interval: Duration::from_millis(self.health_interval_ms.max(200)),
            tenant_concurrency: self.tenant_concurrency,
            min_schedule_interval: Duration::from_secs(self.min_schedule_interval_secs),
            maintenance_statement_timeout: Duration::from_secs(self.maintenance_statement_timeout_secs.max(1)),
            retention: Duration::from_secs(self.retention_days * 86_400),
            purge_interval: Duration::from_millis(self.purge_interval_ms.max(100)),
            metrics_interval: Duration::from_millis(self.metrics_interval_ms.max(500)),
            drift_interval: Duration::from_millis(self.drift_interval_ms.max(500)),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            secure_cookies: self.secure_cookies,
            ..EngineConfig::default()
        })
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The state database as the operation engine reaches it (default: DATABASE_URL); e.g.
    /// a pooler reserved for the engine.
    #[arg(long, env = "DBAAS_ENGINE_DATABASE_URL", hide_env_values = true)]
    pub engine_database_url: Option<String>,
    #[arg(long, env = "DBAAS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// 32-byte key, base64, that encrypts stored secrets.
    #[arg(long, env = "DBAAS_MASTER_KEY", hide_env_values = true, conflicts_with = "master_key_file")]
    pub master_key: Option<String>,
    /// File holding the base64 master key.
    #[arg(long, env = "DBAAS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// PEM certificate (chain) to serve HTTPS; needs --tls-key.
    #[arg(long, env = "DBAAS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "DBAAS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl ServeArgs {
    pub fn key(&self) -> Result<MasterKey> {
        load_key(&self.master_key, &self.master_key_file)
    }
}

/// The master key from its variable or its file.
fn load_key(master_key: &Option<String>, master_key_file: &Option<PathBuf>) -> Result<MasterKey> {
    MasterKey::load(master_key.as_deref(), master_key_file.as_deref())
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the clusters, the master key and the env file live; reused by the next start.
    #[arg(long, env = "DBAAS_DEV_DIR", default_value = "/var/tmp/dbaas-dev")]
    pub data_dir: PathBuf,
    /// API port.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of the routing proxy in front of this machine's managed instances (used when
    /// host `local` is first registered).
    #[arg(long, default_value_t = 16432)]
    pub proxy_port: u16,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown only this once).
    Create {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// A platform-admin token.
        #[arg(long, conflicts_with = "tenant", required_unless_present = "tenant")]
        admin: bool,
        /// A token scoped to this tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
}

/// The libpq variables sqlx would read when it builds connection options (host, port, user,
/// password, database, TLS files and mode, options, application name, password file).
const LIBPQ_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGAPPNAME",
    "PGOPTIONS",
    "PGPASSFILE",
];

/// Removes the libpq variables from this process's environment and names those that were
/// set: connections to the state database come from `DATABASE_URL`, and to instances from
/// their records, never from a variable left in a shell. Call it before any thread starts.
pub fn scrub_libpq_env() -> Vec<String> {
    let mut found = Vec::new();
    for name in LIBPQ_ENV {
        if std::env::var_os(name).is_some() {
            found.push(name.to_string());
            std::env::remove_var(name);
        }
    }
    found
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let key = args.key()?;
            let engine = args.engine.config()?;
            let db = crate::server::connect_state_db(&args.database_url).await?;
            let tls = match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => Some(crate::server::Tls { cert: cert.clone(), key: key.clone() }),
                _ => None,
            };
            let engine_url = args.engine_database_url.as_deref().unwrap_or(&args.database_url);
            let engine_db = crate::server::connect_engine_db(engine_url, engine.workers).await?;
            let mut state = crate::server::state(db, key, engine);
            state.engine_db = engine_db;
            crate::server::serve_with(state, args.listen, tls, crate::server::shutdown_on_signals()).await
        }
        Command::Dev(args) => crate::dev::run(&args.data_dir, args.port, args.proxy_port, args.engine.config()?).await,
        Command::Openapi { markdown } => {
            let (_, doc) = crate::http::api();
            if markdown {
                print!("{}", crate::http::reference::markdown(&doc));
            } else {
                println!("{}", doc.to_pretty_json()?);
            }
            Ok(())
        }
        Command::Migrate { database_url } => {
            crate::server::connect_state_db(&database_url).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::BackupOpen(args) => {
            let (url, key) = match &args.database_url {
                Some(url) => (url.clone(), load_key(&args.master_key, &args.master_key_file)?),
                None => crate::dev::backup_open_settings(&args.dev_dir, &args.master_key, &args.master_key_file)?,
            };
            let db = sqlx::PgPool::connect(&url).await.context("connecting to the state database")?;
            crate::backup::open_to(&db, &key, args.backup, &mut tokio::io::stdout()).await
        }
        Command::Token(TokenCommand::Create { database_url, admin, tenant, description }) => {
            let db = crate::server::connect_state_db(&database_url).await?;
            let tenant_id = match (&tenant, admin) {
                (Some(name), _) => Some(
                    sqlx::query_scalar::<_, uuid::Uuid>(
                        "SELECT id FROM tenants WHERE name = $1 AND deleted_at IS NULL",
                    )
                    .bind(name)
                    .fetch_optional(&db)
                    .await?
                    .with_context(|| format!("no tenant named {name:?}"))?,
                ),
                (None, _) => None,
            };
            let created = crate::store::tokens::issue(&db, tenant_id, &description, None).await?;
            println!("{}", created.secret);
            Ok(())
        }
    }
}
