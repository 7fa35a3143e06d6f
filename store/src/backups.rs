//! Backup stores and backups: their rows and queries.

use chrono::{DateTime, Utc};
use dbaas_client::{
    Backup, BackupManifest, BackupReason, BackupStatus, BackupStore, BackupStoreKind, Environment, ObjectLock,
    ObjectLockMode, S3Location, VerifyStatus,
};
use uuid::Uuid;

const STORE_COLUMNS: &str = "s.id, s.name, s.kind, s.path, s.s3, s.secret_enc, s.object_lock_mode, \
    s.object_lock_days, s.bucket_object_lock, s.environments, s.created_at";

pub type StoreKind = BackupStoreKind;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoreRow {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: StoreKind,
    pub path: Option<String>,
    pub s3: Option<sqlx::types::Json<S3Location>>,
    pub secret_enc: Option<Vec<u8>>,
    #[sqlx(try_from = "Option<String>")]
    pub object_lock_mode: LockColumn,
    pub object_lock_days: Option<i32>,
    pub bucket_object_lock: Option<bool>,
    pub environments: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// The `object_lock_mode` column, decoded strictly (NULL: no Object Lock).
#[derive(Debug, Clone, Copy, Default)]
pub struct LockColumn(pub Option<ObjectLockMode>);

impl TryFrom<Option<String>> for LockColumn {
    type Error = dbaas_client::UnknownValue;
    fn try_from(v: Option<String>) -> Result<Self, Self::Error> {
        v.map(ObjectLockMode::try_from).transpose().map(LockColumn)
    }
}

impl StoreRow {
    /// Environments decode strictly: a value that is not one is an error, not skipped.
    pub fn environments(&self) -> Result<Vec<Environment>, dbaas_client::UnknownValue> {
        self.environments.iter().map(|e| Environment::try_from(e.clone())).collect()
    }

    pub fn serves(&self, env: Environment) -> bool {
        self.environments.iter().any(|e| e == env.as_str())
    }

    /// The context the S3 secret is encrypted under (bound to this store).
    pub fn secret_context(&self) -> String {
        format!("backup-store:{}", self.id)
    }

    pub fn object_lock(&self) -> Option<ObjectLock> {
        match (self.object_lock_mode.0, self.object_lock_days) {
            (Some(mode), Some(days)) => Some(ObjectLock { mode, days: days as u32 }),
            _ => None,
        }
    }

    pub fn to_model(&self) -> Result<BackupStore, dbaas_client::UnknownValue> {
        Ok(BackupStore {
            id: self.id,
            name: self.name.clone(),
            kind: self.kind,
            path: self.path.clone(),
            s3: self.s3.as_ref().map(|j| j.0.clone()),
            object_lock: self.object_lock(),
            bucket_object_lock: self.bucket_object_lock,
            environments: self.environments()?,
            created_at: self.created_at,
        })
    }
}

pub async fn stores<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<Vec<StoreRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {STORE_COLUMNS} FROM backup_stores s ORDER BY s.name")).fetch_all(db).await
}

pub async fn store_by_name<'e>(db: impl sqlx::PgExecutor<'e>, name: &str) -> Result<Option<StoreRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {STORE_COLUMNS} FROM backup_stores s WHERE s.name = $1"))
        .bind(name)
        .fetch_optional(db)
        .await
}

pub async fn store<'e>(db: impl sqlx::PgExecutor<'e>, id: Uuid) -> Result<Option<StoreRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {STORE_COLUMNS} FROM backup_stores s WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub const BACKUP_COLUMNS: &str = "b.id, b.database_id, b.tenant_id, b.store_id, st.name AS store_name, b.status, \
    b.object_key, b.data_key_enc, b.size_bytes, b.dump_bytes, b.sha256, b.manifest, b.error, b.verify_status, \
    b.verify_message, b.verified_at, b.restore_ms, b.created_at, b.finished_at, b.object_version, b.locked_until, \
    b.expires_at, b.reason, b.recovery_target";
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
    pub object_version: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "String")]
    pub reason: BackupReason,
    pub recovery_target: Option<DateTime<Utc>>,
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
    /// Under Object Lock retention now: the store refuses to delete it.
    pub fn is_locked(&self) -> bool {
        self.locked_until.is_some_and(|t| t > Utc::now())
    }

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
            reason: self.reason,
            recovery_target: self.recovery_target,
            expires_at: self.expires_at,
            locked_until: self.locked_until,
            locked: self.is_locked(),
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
