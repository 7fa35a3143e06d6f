//! Backup stores and backups: their rows and queries.

use chrono::{DateTime, Utc};
use dbaas_client::{Backup, BackupManifest, BackupStatus, BackupStore, Environment, VerifyStatus};
use uuid::Uuid;

const STORE_COLUMNS: &str = "s.id, s.name, s.kind, s.path, s.environments, s.created_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoreRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub path: String,
    pub environments: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl StoreRow {
    /// Environments decode strictly: a value that is not one is an error, not skipped.
    pub fn environments(&self) -> Result<Vec<Environment>, dbaas_client::UnknownValue> {
        self.environments.iter().map(|e| Environment::try_from(e.clone())).collect()
    }

    pub fn serves(&self, env: Environment) -> bool {
        self.environments.iter().any(|e| e == env.as_str())
    }

    pub fn to_model(&self) -> Result<BackupStore, dbaas_client::UnknownValue> {
        Ok(BackupStore {
            id: self.id,
            name: self.name.clone(),
            kind: self.kind.clone(),
            path: self.path.clone(),
            environments: self.environments()?,
            created_at: self.created_at,
        })
    }
}

pub async fn stores(db: &sqlx::PgPool) -> Result<Vec<StoreRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {STORE_COLUMNS} FROM backup_stores s ORDER BY s.name")).fetch_all(db).await
}

pub async fn store_by_name<'e>(db: impl sqlx::PgExecutor<'e>, name: &str) -> Result<Option<StoreRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {STORE_COLUMNS} FROM backup_stores s WHERE s.name = $1"))
        .bind(name)
        .fetch_optional(db)
        .await
}

pub async fn store(db: &sqlx::PgPool, id: Uuid) -> Result<Option<StoreRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {STORE_COLUMNS} FROM backup_stores s WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub const BACKUP_COLUMNS: &str = "b.id, b.database_id, b.tenant_id, b.store_id, st.name AS store_name, b.status, \
    b.object_key, b.data_key_enc, b.size_bytes, b.dump_bytes, b.sha256, b.manifest, b.error, b.verify_status, \
    b.verify_message, b.verified_at, b.restore_ms, b.created_at, b.finished_at";
pub const BACKUP_FROM: &str = "backups b JOIN backup_stores st ON st.id = b.store_id";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BackupRow {
    pub id: Uuid,
    pub database_id: Uuid,
    pub tenant_id: Uuid,
    pub store_id: Uuid,
    pub store_name: String,
    #[sqlx(try_from = "String")]
    pub status: BackupStatus,
    pub object_key: String,
    pub data_key_enc: Vec<u8>,
    pub size_bytes: Option<i64>,
    pub dump_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub manifest: Option<sqlx::types::Json<BackupManifest>>,
    pub error: Option<String>,
    #[sqlx(try_from = "Option<String>")]
    pub verify_status: Verify,
    pub verify_message: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    pub restore_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The `verify_status` column, decoded strictly (NULL until verified).
#[derive(Debug, Clone, Copy, Default)]
pub struct Verify(pub Option<VerifyStatus>);

impl TryFrom<Option<String>> for Verify {
    type Error = dbaas_client::UnknownValue;
    fn try_from(v: Option<String>) -> Result<Self, Self::Error> {
        v.map(VerifyStatus::try_from).transpose().map(Verify)
    }
}

impl BackupRow {
    pub fn to_model(&self) -> Backup {
        Backup {
            id: self.id,
            database_id: self.database_id,
            store: self.store_name.clone(),
            status: self.status,
            size_bytes: self.size_bytes,
            dump_bytes: self.dump_bytes,
            sha256: self.sha256.clone(),
            manifest: self.manifest.as_ref().map(|m| m.0.clone()),
            error: self.error.clone(),
            verify_status: self.verify_status.0,
            verify_message: self.verify_message.clone(),
            verified_at: self.verified_at,
            restore_ms: self.restore_ms,
            created_at: self.created_at,
            finished_at: self.finished_at,
        }
    }
}

pub async fn backup<'e>(db: impl sqlx::PgExecutor<'e>, id: Uuid) -> Result<Option<BackupRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {BACKUP_COLUMNS} FROM {BACKUP_FROM} WHERE b.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn of_database(db: &sqlx::PgPool, database: Uuid) -> Result<Vec<BackupRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {BACKUP_COLUMNS} FROM {BACKUP_FROM} WHERE b.database_id = $1 ORDER BY b.created_at DESC"
    ))
    .bind(database)
    .fetch_all(db)
    .await
}
