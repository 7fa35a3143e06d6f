//! Connecting to an instance with the service's admin login.

use std::time::Duration;

use dbaas_client::SslMode;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection, Executor, PgConnection};

use crate::crypto::{CryptoError, MasterKey};
use dbaas_engine::OpError;
use dbaas_store::naming::PgQuote;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The database every instance has, where cluster-wide statements and our locks go.
pub const MAINTENANCE_DB: &str = "postgres";
/// The search_path of every session the service opens on a target (see [`Target::new`]).
pub const PINNED_SEARCH_PATH: &str = "pg_catalog,pg_temp";

/// Sessions whose client vanished without a FIN or RST (a replica cut off from the network)
/// are ended by the server within about 25 s, set per session: keepalive probes when the
/// session is idle, `tcp_user_timeout` when its answer is never acknowledged (otherwise TCP
/// retransmits for some 15 minutes). Their session-level advisory locks (collector and
/// reconciler turns, operation locks on instances) then pass to another replica instead of
/// being held while the lost replica's attempt is long over.
pub const SERVER_KEEPALIVES: [(&str, &str); 4] = [
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "25000"),
];

pub use dbaas_store::instances::{InstanceRow, ManagedState, INSTANCE_COLUMNS};

/// How the service reaches an instance of a stored row (the row is the store's; reaching it
/// is the catalog's).
pub trait InstanceTarget {
    fn target(&self, key: &MasterKey) -> Result<Target, CryptoError>;
}

impl InstanceTarget for InstanceRow {
    fn target(&self, key: &MasterKey) -> Result<Target, CryptoError> {
        let password = key.decrypt(&self.admin_password_enc, &format!("instance:{}", self.id))?;
        Ok(Target::new(
            &self.host,
            self.port as u16,
            &self.admin_user,
            &password,
            self.sslmode,
            self.ca_cert.as_deref(),
        ))
    }
}

/// How to reach one instance as the service's admin.
#[derive(Clone)]
pub struct Target {
    opts: PgConnectOptions,
}

impl Target {
    pub fn new(host: &str, port: u16, user: &str, password: &str, sslmode: SslMode, ca_pem: Option<&str>) -> Self {
        // Every field libpq's environment could set is set here from the instance record;
        // `dbaas-api` also drops those variables when it starts (`crate::cli::scrub_libpq_env`),
        // since sqlx reads some (client certificate, options) that cannot be unset afterwards.
        let mut opts = PgConnectOptions::new_without_pgpass()
            .host(host)
            .port(port)
            .username(user)
            .password(password)
            .application_name("dbaas-api")
            .ssl_mode(match sslmode {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Prefer => PgSslMode::Prefer,
                SslMode::Require => PgSslMode::Require,
                SslMode::VerifyCa => PgSslMode::VerifyCa,
                SslMode::VerifyFull => PgSslMode::VerifyFull,
            });
        if let Some(pem) = ca_pem {
            opts = opts.ssl_root_cert_from_pem(pem.as_bytes().to_vec());
        }
        // Startup options win over `ALTER DATABASE/ROLE … SET search_path`, which a tenant
        // controls for its own database: unqualified names in our SQL can only resolve to
        // pg_catalog (pg_temp is never searched for functions or operators).
        opts = opts.options([("search_path", PINNED_SEARCH_PATH)]).options(SERVER_KEEPALIVES);
        Self { opts }
    }

    /// The same instance reached with another login: used to act inside a tenant's database
    /// as that database's admin role, so nothing the tenant defined there ever runs with
    /// more privilege than the tenant already has.
    pub fn as_login(&self, user: &str, password: &str) -> Self {
        Self { opts: self.opts.clone().username(user).password(password) }
    }

    pub async fn connect(&self, database: &str) -> Result<PgConnection, OpError> {
        let opts = self.opts.clone().database(database);
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts)).await {
            Ok(Ok(mut c)) => {
                // Bounded lock waits: a stuck catalog lock fails the attempt (retryable) instead
                // of hanging the worker.
                c.execute("SET lock_timeout = '30s'; SET statement_timeout = '5min'").await?;
                Ok(c)
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                Err(OpError::retryable("timeout", format!("no answer from the instance within {CONNECT_TIMEOUT:?}")))
            }
        }
    }
}

/// A connection to the maintenance database holding our advisory locks; dropping it (even
/// by a crash) releases them.
pub struct Locked {
    pub conn: PgConnection,
}

impl Locked {
    /// A maintenance-database session without a per-database lock: for work that must not
    /// wait behind a long job on the database (a lease revocation during a slow delete).
    pub async fn instance(target: &Target) -> Result<Self, OpError> {
        Ok(Self { conn: target.connect(MAINTENANCE_DB).await? })
    }

    /// Connects and takes the lock serialising all statements on `physical_db`.
    pub async fn database(target: &Target, physical_db: &str) -> Result<Self, OpError> {
        let mut conn = target.connect(MAINTENANCE_DB).await?;
        sqlx::query("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext($1))")
            .bind(format!("dbaas:database:{physical_db}"))
            .execute(&mut conn)
            .await?;
        Ok(Self { conn })
    }

    /// Runs `f` under the instance-wide lock on role DDL (pg_authid is shared by all
    /// databases; serialising role changes avoids `tuple concurrently updated`).
    pub async fn roles_lock(&mut self) -> Result<(), OpError> {
        sqlx::query("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('dbaas:roles'))")
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    pub async fn roles_unlock(&mut self) -> Result<(), OpError> {
        sqlx::query("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('dbaas:roles'))")
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }
}

/// Executes one statement as simple-query text (DDL cannot take bind parameters).
pub async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), OpError> {
    conn.execute(sql).await?;
    Ok(())
}

pub async fn role_exists(conn: &mut PgConnection, role: &str) -> Result<bool, OpError> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1)",
    )
    .bind(role)
    .fetch_one(conn)
    .await?)
}

/// Ends every session of `role` (on the whole instance).
pub async fn terminate_role_sessions(conn: &mut PgConnection, role: &str) -> Result<i64, OpError> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity \
         WHERE usename OPERATOR(pg_catalog.=) $1 AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
    )
    .bind(role)
    .fetch_one(conn)
    .await?)
}

/// Drops a login role after moving or dropping what it owns in every database that has
/// anything of it. `heir` receives ownership of its objects (None: they are dropped).
///
/// Only a role carrying `marker` is touched: a foreign role with the same name is left alone
/// (and said so in the returned log).
pub async fn drop_role_everywhere(
    target: &Target,
    maint: &mut PgConnection,
    role: &str,
    marker: dbaas_store::naming::Marker,
    heir: Option<&str>,
) -> Result<Vec<String>, OpError> {
    let mut log = Vec::new();
    match super::ownership::role(maint, role, marker).await? {
        super::ownership::Ownership::Absent => return Ok(log),
        super::ownership::Ownership::Foreign(why) => {
            log.push(format!("role {role} is not ours ({why}); left untouched"));
            return Ok(log);
        }
        _ => {}
    }
    let n = terminate_role_sessions(maint, role).await?;
    if n > 0 {
        log.push(format!("terminated {n} session(s) of {role}"));
    }
    let dbs: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT d.datname FROM pg_catalog.pg_shdepend s \
         JOIN pg_catalog.pg_database d ON d.oid = s.dbid \
         WHERE s.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass \
           AND s.refobjid OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1) \
           AND d.datallowconn",
    )
    .bind(role)
    .fetch_all(&mut *maint)
    .await?;
    for db in dbs {
        let mut c = if db == MAINTENANCE_DB { None } else { Some(target.connect(&db).await?) };
        let conn = c.as_mut().unwrap_or(maint);
        if let Some(h) = heir {
            if role_exists(conn, h).await? {
                exec(conn, &format!("REASSIGN OWNED BY {} TO {}", role.pg_ident(), h.pg_ident())).await?;
            }
        }
        exec(conn, &format!("DROP OWNED BY {}", role.pg_ident())).await?;
        log.push(format!("cleared what {role} owned or was granted in {db}"));
    }
    exec(maint, &format!("DROP ROLE IF EXISTS {}", role.pg_ident())).await?;
    log.push(format!("dropped role {role}"));
    Ok(log)
}

/// Revokes every membership in `role` (a member could act as it).
pub async fn revoke_members(conn: &mut PgConnection, role: &str) -> Result<(), OpError> {
    let members: Vec<String> = sqlx::query_scalar(
        "SELECT m.rolname::pg_catalog.text FROM pg_catalog.pg_auth_members a \
         JOIN pg_catalog.pg_roles m ON m.oid OPERATOR(pg_catalog.=) a.member \
         JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.roleid \
         WHERE r.rolname OPERATOR(pg_catalog.=) $1",
    )
    .bind(role)
    .fetch_all(&mut *conn)
    .await?;
    for m in members {
        exec(conn, &format!("REVOKE {} FROM {}", role.pg_ident(), m.pg_ident())).await?;
    }
    Ok(())
}
