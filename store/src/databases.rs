//! Databases and their credentials as the state database keeps them: rows, columns, loads.

use chrono::{DateTime, Utc};
use dbaas_client::{
    Access, BackupStatus, Database, DatabaseBackups, DatabaseMode, DatabaseStatus, PoolMode, RoleNames, VerifyStatus,
};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::instances::{InstanceRow, INSTANCE_COLUMNS};
use crate::naming::PhysicalNames;

/// The columns of a `DatabaseRow`, with what stands for the instance's CA certificate.
macro_rules! database_columns {
    ($ca_cert:literal) => {
        concat!(
            "d.id, d.tenant_id, t.name AS tenant_name, d.name, d.physical_name, d.instance_id, \
            i.name AS instance_name, i.environment, i.public_host, coalesce(ph.proxy_port, i.port) AS port, \
            ph.proxy_port IS NOT NULL AS via_proxy, ",
            $ca_cert,
            ", d.mode, d.pool_mode, d.status, d.extensions, \
            d.connection_limit, d.version, d.last_operation_id, d.created_at, d.updated_at, d.backup_retention_days, \
            d.backup_store_id, bs.name AS backup_store_name, d.retained_until, lb.created_at AS last_backup_at, \
            lb.status AS last_backup_status, lv.verify_status AS last_verify_status, lv.verified_at AS last_verified_at"
        )
    };
}

/// Through the proxy, clients get the proxy's CA after the instance's (a bundle: either
/// address verifies).
pub const DATABASE_COLUMNS: &str = database_columns!(
    "CASE WHEN ph.proxy_port IS NOT NULL THEN i.ca_cert || E'\\n' || ph.proxy_ca_cert ELSE i.ca_cert END AS ca_cert"
);
/// For lists, which never show the instance's CA certificate (credentials do): without it a
/// page of 100 carries 100 copies fewer of the same PEM from the state database.
pub const DATABASE_LIST_COLUMNS: &str = database_columns!("NULL::text AS ca_cert");

/// With the database's latest backup and latest verification (index `backups_database`).
pub const DATABASE_FROM: &str = "databases d JOIN tenants t ON t.id = d.tenant_id \
    JOIN instances i ON i.id = d.instance_id LEFT JOIN backup_stores bs ON bs.id = d.backup_store_id \
    LEFT JOIN hosts ph ON ph.id = i.host_id AND i.kind = 'managed' AND ph.proxy_port IS NOT NULL \
    LEFT JOIN LATERAL (SELECT b.created_at, b.status FROM backups b WHERE b.database_id = d.id \
        ORDER BY b.created_at DESC LIMIT 1) lb ON true \
    LEFT JOIN LATERAL (SELECT b.verify_status, b.verified_at FROM backups b WHERE b.database_id = d.id \
        AND b.verified_at IS NOT NULL ORDER BY b.verified_at DESC LIMIT 1) lv ON true";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DatabaseRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub name: String,
    /// Stored, not recomputed: unique per instance in the state database.
    pub physical_name: String,
    pub instance_id: Uuid,
    pub instance_name: String,
    #[sqlx(try_from = "String")]
    pub environment: dbaas_client::Environment,
    pub public_host: String,
    /// Where clients connect: the port of the routing proxy of the instance's host when it
    /// runs one, else the instance's own.
    pub port: i32,
    pub via_proxy: bool,
    /// The instance's CA (PEM), handed to clients for `verify-full` (with the proxy's CA
    /// when `via_proxy`).
    pub ca_cert: Option<String>,
    #[sqlx(try_from = "String")]
    pub mode: DatabaseMode,
    #[sqlx(try_from = "String")]
    pub pool_mode: PoolMode,
    #[sqlx(try_from = "String")]
    pub status: DatabaseStatus,
    pub extensions: Vec<String>,
    pub connection_limit: i32,
    pub version: i64,
    pub last_operation_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub backup_retention_days: Option<i32>,
    pub backup_store_id: Option<Uuid>,
    pub backup_store_name: Option<String>,
    pub retained_until: Option<DateTime<Utc>>,
    pub last_backup_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "Option<String>")]
    pub last_backup_status: StatusColumn,
    #[sqlx(try_from = "Option<String>")]
    pub last_verify_status: crate::backups::Verify,
    pub last_verified_at: Option<DateTime<Utc>>,
}

/// A nullable backup status column, decoded strictly.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusColumn(pub Option<BackupStatus>);

impl TryFrom<Option<String>> for StatusColumn {
    type Error = dbaas_client::UnknownValue;
    fn try_from(v: Option<String>) -> Result<Self, Self::Error> {
        v.map(BackupStatus::try_from).transpose().map(StatusColumn)
    }
}

impl DatabaseRow {
    pub fn physical(&self) -> PhysicalNames {
        PhysicalNames::from_stored(&self.physical_name)
    }

    pub fn status(&self) -> DatabaseStatus {
        self.status
    }

    pub fn mode(&self) -> DatabaseMode {
        self.mode
    }

    pub fn to_model(&self) -> Database {
        let p = self.physical();
        Database {
            id: self.id,
            tenant: self.tenant_name.clone(),
            name: self.name.clone(),
            physical_name: p.database.clone(),
            instance: self.instance_name.clone(),
            environment: self.environment,
            host: self.public_host.clone(),
            port: self.port as u16,
            mode: self.mode(),
            status: self.status(),
            extensions: self.extensions.clone(),
            connection_limit: self.connection_limit,
            pool_mode: self.pool_mode,
            roles: RoleNames { read: p.role(Access::Read), write: p.role(Access::Write), admin: p.role(Access::Admin) },
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_operation_id: self.last_operation_id,
            drift: None,
            credentials: None,
            backups: DatabaseBackups {
                retention_days: self.backup_retention_days.map(|d| d as u32),
                store: self.backup_store_name.clone(),
                last_backup_at: self.last_backup_at,
                last_backup_status: self.last_backup_status.0,
                last_verify_status: self.last_verify_status.0,
                last_verified_at: self.last_verified_at,
                verification_failed: self.last_verify_status.0 == Some(VerifyStatus::Failed),
                previous_retained_until: self.retained_until,
            },
        }
    }
}

pub async fn load<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<DatabaseRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {DATABASE_COLUMNS} FROM {DATABASE_FROM} WHERE d.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The database row, locked for the rest of the transaction (serialises its mutations).
pub async fn lock(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<DatabaseRow, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {DATABASE_COLUMNS} FROM {DATABASE_FROM} WHERE d.id = $1 FOR UPDATE OF d"))
        .bind(id)
        .fetch_one(tx)
        .await
}

pub async fn load_instance<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<InstanceRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CredentialRow {
    pub id: Uuid,
    pub database_id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: dbaas_client::CredentialKind,
    #[sqlx(try_from = "String")]
    pub access: Access,
    pub role_name: String,
    pub password_enc: Vec<u8>,
    pub pending_password_enc: Option<Vec<u8>>,
    #[sqlx(try_from = "String")]
    pub status: dbaas_client::CredentialStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub const CREDENTIAL_COLUMNS: &str = "id, database_id, kind, access, role_name, password_enc, \
    pending_password_enc, status, expires_at, rotated_at, created_at";

impl CredentialRow {
    pub fn access(&self) -> Access {
        self.access
    }
    pub fn context(&self) -> String {
        format!("credential:{}", self.id)
    }
}

pub async fn credentials<'e>(db: impl PgExecutor<'e>, database: Uuid) -> Result<Vec<CredentialRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE database_id = $1 ORDER BY kind DESC, access, created_at"
    ))
    .bind(database)
    .fetch_all(db)
    .await
}

/// The credentials of several databases in one query.
pub async fn credentials_of<'e>(
    db: impl PgExecutor<'e>,
    databases: &[Uuid],
) -> Result<Vec<CredentialRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE database_id = ANY($1) ORDER BY kind DESC, access, created_at"
    ))
    .bind(databases)
    .fetch_all(db)
    .await
}

pub async fn credential<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<CredentialRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}
