//! Backup stores (platform admin) and backups of a database (its tenant): take one, list
//! them, read one, verify one by restoring it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use dbaas_client::{
    Backup, BackupAccepted, BackupStatus, BackupStore, CreateBackup, CreateBackupStore, DatabaseStatus, List,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::databases::visible;
use super::extract::ApiJson;
use crate::auth::{Admin, Principal};
use crate::backup::seal::DataKey;
use crate::backup::store::FilesystemStore;
use crate::catalog::jobs::{BackupDatabase, VerifyBackup};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::naming::validate_instance_name;
use crate::ops::queue;
use crate::state::AppState;
use crate::store::backups::{self as rows, BackupRow, StoreRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_stores, create_store))
        .routes(routes!(list_backups, create_backup))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(verify_backup))
}

fn store_view(row: &StoreRow) -> ApiResult<BackupStore> {
    row.to_model().map_err(|e| ApiError::Internal(anyhow::anyhow!("stored environment: {e}")))
}

#[utoipa::path(get, path = "/v1/backup-stores", tag = "backups", responses((status = 200, body = List<BackupStore>)))]
async fn list_stores(State(s): State<AppState>, _: Admin) -> ApiResult<axum::Json<List<BackupStore>>> {
    let items = rows::stores(&s.db).await?.iter().map(store_view).collect::<ApiResult<Vec<_>>>()?;
    Ok(axum::Json(List { items }))
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

/// Validates, probes and records a filesystem store (`POST /v1/backup-stores`, and `dev`).
pub async fn register_store(s: &AppState, req: CreateBackupStore) -> ApiResult<BackupStore> {
    let mut errs = FieldErrors::default();
    errs.check("name", "invalid_name", validate_instance_name(&req.name));
    if req.environments.is_empty() {
        errs.add("environments", "required", "name the environments whose databases keep backups here");
    }
    let path = std::path::Path::new(&req.path);
    let plain = req.path.starts_with('/') && path.components().all(|c| !matches!(c, std::path::Component::ParentDir));
    if !plain {
        errs.add("path", "invalid_path", "an absolute path without '..'");
    }
    errs.into_result()?;
    if rows::store_by_name(&s.db, &req.name).await?.is_some() {
        return Err(ApiError::Conflict("already_exists", format!("backup store {:?} already exists", req.name)));
    }
    let store = FilesystemStore::new(path).map_err(|e| ApiError::field("path", "unusable", e.to_string()))?;
    store.probe().await.map_err(|e| ApiError::field("path", "unusable", format!("the probe object failed: {e}")))?;
    let mut envs: Vec<&str> = req.environments.iter().map(|e| e.as_str()).collect();
    envs.sort_unstable();
    envs.dedup();
    sqlx::query("INSERT INTO backup_stores (id, name, kind, path, environments) VALUES ($1, $2, 'filesystem', $3, $4)")
        .bind(Uuid::new_v4())
        .bind(&req.name)
        .bind(&req.path)
        .bind(&envs)
        .execute(&s.db)
        .await?;
    let row = rows::store_by_name(&s.db, &req.name).await?.ok_or(ApiError::NotFound("backup store"))?;
    store_view(&row)
}

#[utoipa::path(get, path = "/v1/databases/{id}/backups", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 200, body = List<Backup>, description = "Newest first")))]
async fn list_backups(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<List<Backup>>> {
    let db = visible(&s, &who, id).await?;
    Ok(axum::Json(List { items: rows::of_database(&s.db, db.id).await?.iter().map(BackupRow::to_model).collect() }))
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
    let store = match &req.store {
        Some(name) => {
            let store = rows::store_by_name(&s.db, name)
                .await?
                .ok_or_else(|| ApiError::field("store", "unknown_store", format!("no backup store named {name:?}")))?;
            if !store.serves(env) {
                return Err(ApiError::field(
                    "store",
                    "store_not_serving",
                    format!("store {name} does not keep backups of {} databases", env.as_str()),
                ));
            }
            store
        }
        None => {
            let serving: Vec<StoreRow> = rows::stores(&s.db).await?.into_iter().filter(|st| st.serves(env)).collect();
            match <[StoreRow; 1]>::try_from(serving) {
                Ok([one]) => one,
                Err(v) if v.is_empty() => {
                    return Err(ApiError::field(
                        "store",
                        "no_store",
                        format!("no backup store keeps backups of {} databases", env.as_str()),
                    ))
                }
                Err(_) => {
                    return Err(ApiError::field("store", "required", "several stores serve this environment: name one"))
                }
            }
        }
    };
    let backup_id = Uuid::new_v4();
    let object_key = format!("{}/{}/{backup_id}.dump.sealed", db.tenant_id, db.id);
    let data_key = DataKey::generate().wrap(&s.key, backup_id);
    let mut tx = s.db.begin().await?;
    sqlx::query(
        "INSERT INTO backups (id, database_id, tenant_id, store_id, status, object_key, data_key_enc) \
         VALUES ($1, $2, $3, $4, 'running', $5, $6)",
    )
    .bind(backup_id)
    .bind(db.id)
    .bind(db.tenant_id)
    .bind(store.id)
    .bind(&object_key)
    .bind(&data_key)
    .execute(&mut *tx)
    .await?;
    let op =
        queue::enqueue(&mut tx, &BackupDatabase { backup_id }.into(), "database", db.id, Some(db.tenant_id)).await?;
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
    let db = visible(&s, &who, backup.database_id).await?;
    if db.status() != DatabaseStatus::Ready {
        return Err(ApiError::Conflict(
            "invalid_state",
            "verification needs the database's roles: it is not ready".into(),
        ));
    }
    let mut tx = s.db.begin().await?;
    let job = VerifyBackup { backup_id: backup.id }.into();
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
    let store = FilesystemStore::new(std::path::Path::new(&store_row.path))
        .map_err(|e| ApiError::Unavailable(format!("the backup store cannot be used: {e}")))?;
    // The object first: a failure leaves the record (and a retry finds the object gone).
    store
        .delete(&backup.object_key)
        .await
        .map_err(|e| ApiError::Unavailable(format!("deleting the stored object failed: {e}")))?;
    sqlx::query("DELETE FROM backups WHERE id = $1").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
