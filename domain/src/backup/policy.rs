//! Backup policy: what an environment's databases get (a daily backup schedule, a restore
//! drill schedule in prod, a retention in days, a final backup on delete), the bounds a
//! database's own settings stay within, and starting one backup (by hand, by a schedule, or
//! before a delete) with its store, retention and Object Lock date decided in one place.

use chrono::{DateTime, Duration, Utc};
use dbaas_client::{BackupPolicy, BackupReason, Environment};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::seal::DataKey;
use super::store::{LockMode, Retention};
use crate::catalog::jobs::BackupDatabase;
use crate::crypto::MasterKey;
use crate::error::{ApiError, ApiResult};
use crate::operation::{self as queue, OperationRow};
use dbaas_store::backups::{self as rows, StoreRow};
use dbaas_store::databases::DatabaseRow;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    #[sqlx(try_from = "String")]
    pub environment: Environment,
    pub backup_cron: Option<String>,
    pub verify_cron: Option<String>,
    pub retention_days: i32,
    pub min_retention_days: i32,
    pub max_retention_days: i32,
    pub final_backup_on_delete: bool,
}

impl PolicyRow {
    pub fn to_model(&self) -> BackupPolicy {
        BackupPolicy {
            environment: self.environment,
            backup_cron: self.backup_cron.clone(),
            verify_cron: self.verify_cron.clone(),
            retention_days: self.retention_days as u32,
            min_retention_days: self.min_retention_days as u32,
            max_retention_days: self.max_retention_days as u32,
            final_backup_on_delete: self.final_backup_on_delete,
        }
    }

    /// A database's own retention, checked against the bounds.
    pub fn check_retention(&self, days: u32) -> ApiResult<()> {
        let (lo, hi) = (self.min_retention_days as u32, self.max_retention_days as u32);
        if !(lo..=hi).contains(&days) {
            return Err(ApiError::field(
                "backup_retention_days",
                "out_of_range",
                format!("{} databases keep backups {lo} to {hi} days", self.environment.as_str()),
            ));
        }
        Ok(())
    }
}

const POLICY_COLUMNS: &str = "environment, backup_cron, verify_cron, retention_days, min_retention_days, \
    max_retention_days, final_backup_on_delete";

pub async fn policies(db: &sqlx::PgPool) -> Result<Vec<PolicyRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {POLICY_COLUMNS} FROM backup_policies ORDER BY environment")).fetch_all(db).await
}

pub async fn policy(db: &mut PgConnection, env: Environment) -> Result<PolicyRow, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {POLICY_COLUMNS} FROM backup_policies WHERE environment = $1"))
        .bind(env.as_str())
        .fetch_one(db)
        .await
}

/// The store a database's backups go to: the one named (checked to serve its environment),
/// else the database's own, else the only store serving its environment.
pub async fn choose_store(
    db: &mut PgConnection,
    env: Environment,
    named: Option<&str>,
    own: Option<Uuid>,
) -> ApiResult<StoreRow> {
    choose_store_for("store", db, env, named, own).await
}

/// [`choose_store`], its errors reported on `field`.
pub async fn choose_store_for(
    field: &str,
    db: &mut PgConnection,
    env: Environment,
    named: Option<&str>,
    own: Option<Uuid>,
) -> ApiResult<StoreRow> {
    let store = match (named, own) {
        (Some(name), _) => rows::store_by_name(&mut *db, name)
            .await?
            .ok_or_else(|| ApiError::field(field, "unknown_store", format!("no backup store named {name:?}")))?,
        (None, Some(id)) => rows::store(&mut *db, id).await?.ok_or(ApiError::NotFound("backup store"))?,
        (None, None) => {
            let serving: Vec<StoreRow> =
                rows::stores(&mut *db).await?.into_iter().filter(|st| st.serves(env)).collect();
            return match <[StoreRow; 1]>::try_from(serving) {
                Ok([one]) => Ok(one),
                Err(v) if v.is_empty() => Err(ApiError::field(
                    field,
                    "no_store",
                    format!("no backup store keeps backups of {} databases", env.as_str()),
                )),
                Err(_) => Err(ApiError::field(field, "required", "several stores serve this environment: name one")),
            };
        }
    };
    if !store.serves(env) {
        return Err(ApiError::field(
            field,
            "store_not_serving",
            format!("store {} does not keep backups of {} databases", store.name, env.as_str()),
        ));
    }
    Ok(store)
}

/// The Object Lock retention an object written now gets in `store`.
pub fn retention_for(store: &StoreRow, now: DateTime<Utc>) -> Option<Retention> {
    store.object_lock().map(|l| Retention {
        mode: match l.mode {
            dbaas_client::ObjectLockMode::Governance => LockMode::Governance,
            dbaas_client::ObjectLockMode::Compliance => LockMode::Compliance,
        },
        until: now + Duration::days(i64::from(l.days)),
    })
}

/// Records a running backup of `db` and enqueues its operation, in the caller's transaction.
pub async fn start(
    tx: &mut Transaction<'_, Postgres>,
    key: &MasterKey,
    db: &DatabaseRow,
    env: Environment,
    store: &StoreRow,
    reason: BackupReason,
) -> ApiResult<(Uuid, OperationRow)> {
    let backup_id = record(tx, key, db, env, store, reason, None).await?;
    let op = queue::enqueue(tx, &BackupDatabase { backup_id }, "database", db.id, Some(db.tenant_id)).await?;
    Ok((backup_id, op))
}

/// Records a running backup of `db` (its operation is the caller's: a backup's own, or the
/// delete that takes a final one first).
pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    key: &MasterKey,
    db: &DatabaseRow,
    env: Environment,
    store: &StoreRow,
    reason: BackupReason,
    recovery_target: Option<DateTime<Utc>>,
) -> ApiResult<Uuid> {
    let policy = policy(&mut *tx, env).await?;
    let days = db.backup_retention_days.unwrap_or(policy.retention_days);
    let now = Utc::now();
    let retention = retention_for(store, now);
    let backup_id = Uuid::new_v4();
    let object_key = format!("{}/{}/{backup_id}.dump.sealed", db.tenant_id, db.id);
    let data_key = DataKey::generate().wrap(key, backup_id);
    sqlx::query(
        "INSERT INTO backups (id, database_id, tenant_id, store_id, status, object_key, data_key_enc, reason, \
         expires_at, locked_until, recovery_target) VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9, $10)",
    )
    .bind(backup_id)
    .bind(db.id)
    .bind(db.tenant_id)
    .bind(store.id)
    .bind(&object_key)
    .bind(&data_key)
    .bind(reason.as_str())
    .bind(now + Duration::days(i64::from(days)))
    .bind(retention.map(|r| r.until))
    .bind(recovery_target)
    .execute(&mut **tx)
    .await?;
    Ok(backup_id)
}
