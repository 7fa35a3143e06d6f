//! Backup stores (platform admin) and backups of a database (its tenant): take one, list
//! them, read one, verify one by restoring it.

use super::extract::ApiQuery;
use super::pagination::{in_memory, PageQuery};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dbaas_client::{
    Backup, BackupAccepted, BackupPolicy, BackupReason, BackupStatus, BackupStore, BackupStoreKind, CreateBackup,
    CreateBackupStore, DatabaseStatus, Environment, List,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::databases::visible;
use super::extract::ApiJson;
use crate::auth::{Admin, Principal};
use crate::backup::policy;
use crate::backup::s3::{S3Location, S3Store};
use crate::backup::store::{Store, StoreError};
use crate::catalog::jobs::VerifyBackup;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::naming::validate_instance_name;
use crate::operation as queue;
use crate::operation::OperationModel;
use crate::state::AppState;
use crate::store::backups::{self as rows, BackupRow, StoreRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_stores, create_store))
        .routes(routes!(list_backups, create_backup))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(verify_backup))
        .routes(routes!(list_policies))
        .routes(routes!(put_policy))
}

fn store_view(row: &StoreRow) -> ApiResult<BackupStore> {
    row.to_model().map_err(|e| ApiError::Internal(anyhow::anyhow!("stored environment: {e}")))
}

#[utoipa::path(get, path = "/v1/backup-stores", tag = "backups", params(PageQuery),
    responses((status = 200, body = List<BackupStore>)))]
async fn list_stores(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<List<BackupStore>>> {
    let items = rows::stores(&s.db).await?.iter().map(store_view).collect::<ApiResult<Vec<_>>>()?;
    let (items, next_cursor) = in_memory(items, &q, |b: &BackupStore| b.name.clone())?;
    Ok(axum::Json(List { items, next_cursor }))
}

#[utoipa::path(post, path = "/v1/backup-stores", tag = "backups", request_body = CreateBackupStore,
    responses((status = 201, body = BackupStore, description = "Registered after writing, reading and deleting a probe object")))]
async fn create_store(
    State(s): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<CreateBackupStore>,
) -> ApiResult<(StatusCode, axum::Json<BackupStore>)> {
    Ok((StatusCode::CREATED, axum::Json(register_store(&s, req).await?)))
}

/// Validates, probes and records a store (`POST /v1/backup-stores`, and `dev`). An S3
/// store's secret is encrypted under a context naming the store.
pub async fn register_store(s: &AppState, req: CreateBackupStore) -> ApiResult<BackupStore> {
    let mut errs = FieldErrors::default();
    errs.check("name", "invalid_name", validate_instance_name(&req.name));
    if req.environments.is_empty() {
        errs.add("environments", "required", "name the environments whose databases keep backups here");
    }
    match req.kind {
        BackupStoreKind::Filesystem => {
            match &req.path {
                Some(p)
                    if p.starts_with('/')
                        && std::path::Path::new(p)
                            .components()
                            .all(|c| !matches!(c, std::path::Component::ParentDir)) => {}
                Some(_) => errs.add("path", "invalid_path", "an absolute path without '..'"),
                None => errs.add("path", "required", "a filesystem store needs a path"),
            }
            if req.s3.is_some() {
                errs.add("s3", "not_applicable", "a filesystem store has no bucket");
            }
            if req.object_lock.is_some() {
                errs.add("object_lock", "not_applicable", "Object Lock is an S3 feature");
            }
        }
        BackupStoreKind::S3 => {
            if req.path.is_some() {
                errs.add("path", "not_applicable", "an S3 store has no path");
            }
            match &req.s3 {
                None => errs.add("s3", "required", "an S3 store needs endpoint, bucket, region and keys"),
                Some(b) => {
                    if !(b.endpoint.starts_with("https://") || b.endpoint.starts_with("http://")) {
                        errs.add("s3.endpoint", "invalid_url", "an http(s) URL");
                    }
                    let bucket_ok = (3..=63).contains(&b.bucket.len())
                        && b.bucket
                            .bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
                    if !bucket_ok {
                        errs.add("s3.bucket", "invalid_bucket", "3-63 characters: a-z, 0-9, '-', '.'");
                    }
                    if b.region.is_empty() || !b.region.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                        errs.add("s3.region", "invalid_region", "a region name such as eu-west-1");
                    }
                    let prefix_ok = b.prefix.is_empty()
                        || (b.prefix.ends_with('/')
                            && b.prefix.split('/').all(|p| p != "." && p != "..")
                            && b.prefix
                                .bytes()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/')));
                    if !prefix_ok {
                        errs.add(
                            "s3.prefix",
                            "invalid_prefix",
                            "empty, or path segments of a-z, 0-9, '-', '_', '.' ending in '/'",
                        );
                    }
                    if b.access_key_id.is_empty() || b.secret_access_key.is_empty() {
                        errs.add("s3.access_key_id", "required", "the access key id and the secret access key");
                    }
                }
            }
            if req.object_lock.is_some_and(|l| !(1..=36500).contains(&l.days)) {
                errs.add("object_lock.days", "out_of_range", "1 to 36500 days");
            }
        }
    }
    errs.into_result()?;
    if rows::store_by_name(&s.db, &req.name).await?.is_some() {
        return Err(ApiError::Conflict("already_exists", format!("backup store {:?} already exists", req.name)));
    }
    let id = Uuid::new_v4();
    let (store, location, secret_enc) = match (&req.path, &req.s3) {
        (Some(path), _) => {
            let fs = crate::backup::filesystem::FilesystemStore::new(std::path::Path::new(path))
                .map_err(|e| ApiError::field("path", "unusable", e.to_string()))?;
            (Store::Filesystem(fs), None, None)
        }
        (None, Some(b)) => {
            let loc = dbaas_client::S3Location {
                endpoint: b.endpoint.trim_end_matches('/').to_string(),
                bucket: b.bucket.clone(),
                region: b.region.clone(),
                prefix: b.prefix.clone(),
                access_key_id: b.access_key_id.clone(),
            };
            let client = S3Store::new(
                S3Location {
                    endpoint: loc.endpoint.clone(),
                    bucket: loc.bucket.clone(),
                    region: loc.region.clone(),
                    prefix: loc.prefix.clone(),
                    access_key_id: loc.access_key_id.clone(),
                },
                &b.secret_access_key,
            )
            .map_err(|e| ApiError::field("s3.endpoint", "unusable", e.to_string()))?;
            let enc = s.key.encrypt(&b.secret_access_key, &format!("backup-store:{id}"));
            (Store::S3(Box::new(client)), Some(loc), Some(enc))
        }
        (None, None) => return Err(ApiError::field("kind", "required", "a path or a bucket")),
    };
    let facts = match store.probe().await {
        Ok(f) => f,
        Err(StoreError::Unreachable(m)) => {
            return Err(ApiError::Unavailable(format!("the store cannot be reached: {m}")));
        }
        Err(e) => {
            let field = if req.kind == BackupStoreKind::S3 { "s3" } else { "path" };
            return Err(ApiError::field(field, "unusable", format!("the probe object failed: {e}")));
        }
    };
    if req.object_lock.is_some() && !facts.object_lock {
        return Err(ApiError::field(
            "object_lock",
            "object_lock_unavailable",
            "the bucket does not have Object Lock enabled (it can only be enabled when the bucket is created)",
        ));
    }
    let mut envs: Vec<&str> = req.environments.iter().map(|e| e.as_str()).collect();
    envs.sort_unstable();
    envs.dedup();
    sqlx::query(
        "INSERT INTO backup_stores (id, name, kind, path, s3, secret_enc, object_lock_mode, object_lock_days, \
         bucket_object_lock, environments) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(&req.name)
    .bind(req.kind.as_str())
    .bind(&req.path)
    .bind(location.map(sqlx::types::Json))
    .bind(secret_enc)
    .bind(req.object_lock.map(|l| l.mode.as_str()))
    .bind(req.object_lock.map(|l| l.days as i32))
    .bind((req.kind == BackupStoreKind::S3).then_some(facts.object_lock))
    .bind(&envs)
    .execute(&s.db)
    .await?;
    let row = rows::store_by_name(&s.db, &req.name).await?.ok_or(ApiError::NotFound("backup store"))?;
    store_view(&row)
}

#[utoipa::path(get, path = "/v1/databases/{id}/backups", tag = "backups", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = List<Backup>, description = "Newest first")))]
async fn list_backups(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<List<Backup>>> {
    // Backups outlive their database: a deleted one's stay listed to its tenant. Bounded by
    // the retention; newest first (the key negates the time).
    let db = super::restores::own_database(&s, &who, id).await?;
    let items: Vec<Backup> = rows::of_database(&s.db, db.id).await?.iter().map(BackupRow::to_model).collect();
    let (items, next_cursor) = in_memory(items, &q, |b: &Backup| (-b.created_at.timestamp_micros(), b.id))?;
    Ok(axum::Json(List { items, next_cursor }))
}

#[utoipa::path(post, path = "/v1/databases/{id}/backups", tag = "backups", params(("id" = Uuid, Path)),
    request_body = CreateBackup,
    responses((status = 202, body = BackupAccepted, description = "Listed as succeeded once its operation is")))]
async fn create_backup(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<CreateBackup>,
) -> ApiResult<(StatusCode, axum::Json<BackupAccepted>)> {
    let db = visible(&s, &who, id).await?;
    if db.status() != DatabaseStatus::Ready {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!("database is {}; backups are taken of ready databases", db.status().as_str()),
        ));
    }
    let env = crate::store::databases::load_instance(&s.db, db.instance_id)
        .await?
        .ok_or(ApiError::NotFound("instance"))?
        .environment();
    let mut tx = s.db.begin().await?;
    let store = policy::choose_store(&mut tx, env, req.store.as_deref(), db.backup_store_id).await?;
    let (backup_id, op) = policy::start(&mut tx, &s.key, &db, env, &store, BackupReason::Manual).await?;
    tx.commit().await?;
    let backup = rows::backup(&s.db, backup_id).await?.ok_or(ApiError::NotFound("backup"))?;
    Ok((StatusCode::ACCEPTED, axum::Json(BackupAccepted { backup: backup.to_model(), operation: op.to_model() })))
}

/// A backup the caller may see: a tenant sees its own only (404 otherwise, as if absent).
async fn visible_backup(s: &AppState, who: &Principal, id: Uuid) -> ApiResult<BackupRow> {
    match rows::backup(&s.db, id).await? {
        Some(b) if who.tenant_filter().is_none_or(|t| t == b.tenant_id) => Ok(b),
        _ => Err(ApiError::NotFound("backup")),
    }
}

#[utoipa::path(get, path = "/v1/backups/{id}", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 200, body = Backup)))]
async fn get_backup(State(s): State<AppState>, who: Principal, Path(id): Path<Uuid>) -> ApiResult<axum::Json<Backup>> {
    Ok(axum::Json(visible_backup(&s, &who, id).await?.to_model()))
}

#[utoipa::path(post, path = "/v1/backups/{id}/verify", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 202, body = BackupAccepted,
        description = "Restores it into a scratch database and compares row counts with its manifest")))]
async fn verify_backup(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, axum::Json<BackupAccepted>)> {
    let backup = visible_backup(&s, &who, id).await?;
    if backup.status != BackupStatus::Succeeded {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!("the backup is {:?}; only a succeeded backup can be verified", backup.status).to_lowercase(),
        ));
    }
    // The backup is the caller's (checked above); its database may be deleted: a drill uses
    // roles of its own, so a deleted database's backups (its final one above all) are drilled
    // like any other. A database being changed is no moment to.
    let db = crate::store::databases::load(&s.db, backup.database_id).await?.ok_or(ApiError::NotFound("database"))?;
    if !matches!(db.status(), DatabaseStatus::Ready | DatabaseStatus::Deleted | DatabaseStatus::Retained) {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!("the database is {}; drills run when it is ready (or deleted)", db.status().as_str()),
        ));
    }
    let mut tx = s.db.begin().await?;
    let job = VerifyBackup { backup_id: backup.id };
    let op = queue::enqueue(&mut tx, &job, "database", db.id, Some(db.tenant_id)).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, axum::Json(BackupAccepted { backup: backup.to_model(), operation: op.to_model() })))
}

#[utoipa::path(delete, path = "/v1/backups/{id}", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 204, description = "The stored object and the record are gone"),
        (status = 503, body = dbaas_client::Problem, description = "The backup store cannot be used right now; retry")))]
async fn delete_backup(State(s): State<AppState>, who: Principal, Path(id): Path<Uuid>) -> ApiResult<StatusCode> {
    let mut tx = s.db.begin().await?;
    // Locks the database row: two deletes cannot both remove "not the last" good backup.
    let backup = visible_backup(&s, &who, id).await?;
    let db: Option<(String, String)> = sqlx::query_as("SELECT mode, status FROM databases WHERE id = $1 FOR UPDATE")
        .bind(backup.database_id)
        .fetch_optional(&mut *tx)
        .await?;
    if backup.status == BackupStatus::Running {
        return Err(ApiError::Conflict("invalid_state", "the backup is still running".into()));
    }
    if backup.is_locked() {
        // Never asked of the store: it would refuse (compliance) or need a bypass we never use.
        let until = backup.locked_until.map(|t| t.to_rfc3339()).unwrap_or_default();
        return Err(ApiError::Conflict("locked", format!("the backup is under Object Lock retention until {until}")));
    }
    if let Some((mode, status)) = db {
        let good: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM backups WHERE database_id = $1 AND status = 'succeeded' AND id <> $2",
        )
        .bind(backup.database_id)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if mode == "protected" && status != "deleted" && backup.status == BackupStatus::Succeeded && good == 0 {
            return Err(ApiError::Conflict(
                "last_good_backup",
                "this is the last good backup of a protected database; take another one first".into(),
            ));
        }
    }
    let store_row = rows::store(&s.db, backup.store_id).await?.ok_or(ApiError::NotFound("backup store"))?;
    let store = Store::from_row(&store_row, &s.key)
        .map_err(|e| ApiError::Unavailable(format!("the backup store cannot be used: {e}")))?;
    // The object first: a failure leaves the record (and a retry finds the object gone).
    match store.delete(&backup.object_key, backup.object_version.as_deref()).await {
        Ok(()) => {}
        Err(StoreError::Locked(m)) => return Err(ApiError::Conflict("locked", format!("the store refused: {m}"))),
        Err(e) => return Err(ApiError::Unavailable(format!("deleting the stored object failed: {e}"))),
    }
    sqlx::query("DELETE FROM backups WHERE id = $1").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/backup-policies", tag = "backups", params(PageQuery),
    responses((status = 200, body = List<BackupPolicy>, description = "One per environment")))]
async fn list_policies(
    State(s): State<AppState>,
    _: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<List<BackupPolicy>>> {
    let items: Vec<BackupPolicy> = policy::policies(&s.db).await?.iter().map(|p| p.to_model()).collect();
    let (items, next_cursor) = in_memory(items, &q, |p: &BackupPolicy| p.environment.as_str().to_string())?;
    Ok(axum::Json(List { items, next_cursor }))
}

#[utoipa::path(put, path = "/v1/backup-policies/{environment}", tag = "backups",
    params(("environment" = Environment, Path)), request_body = BackupPolicy,
    responses((status = 200, body = BackupPolicy,
        description = "Applies to databases created from now on and to retentions of backups taken from now on")))]
async fn put_policy(
    State(s): State<AppState>,
    _: Admin,
    Path(env): Path<Environment>,
    ApiJson(req): ApiJson<BackupPolicy>,
) -> ApiResult<axum::Json<BackupPolicy>> {
    let mut errs = FieldErrors::default();
    if req.environment != env {
        errs.add("environment", "mismatch", "the body's environment differs from the path's");
    }
    for (field, cron) in [("backup_cron", &req.backup_cron), ("verify_cron", &req.verify_cron)] {
        if let Some(c) = cron {
            errs.check(field, "invalid_cron", dbaas_engine::timing::parse_cron(c).map(|_| ()));
        }
    }
    let ordered = 1 <= req.min_retention_days
        && req.min_retention_days <= req.retention_days
        && req.retention_days <= req.max_retention_days
        && req.max_retention_days <= 36500;
    if !ordered {
        errs.add(
            "retention_days",
            "out_of_range",
            "1 <= min_retention_days <= retention_days <= max_retention_days <= 36500",
        );
    }
    errs.into_result()?;
    sqlx::query(
        "UPDATE backup_policies SET backup_cron = $2, verify_cron = $3, retention_days = $4, min_retention_days = $5, \
         max_retention_days = $6, final_backup_on_delete = $7, updated_at = now() WHERE environment = $1",
    )
    .bind(env.as_str())
    .bind(&req.backup_cron)
    .bind(&req.verify_cron)
    .bind(req.retention_days as i32)
    .bind(req.min_retention_days as i32)
    .bind(req.max_retention_days as i32)
    .bind(req.final_backup_on_delete)
    .execute(&s.db)
    .await?;
    let mut conn = s.db.acquire().await?;
    Ok(axum::Json(policy::policy(&mut conn, env).await?.to_model()))
}
