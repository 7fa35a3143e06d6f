//! Point-in-time recovery: the recovery window of a managed instance (admin) and of a
//! database (its tenant), base backups on demand, and the check a restore to a time passes
//! before anything runs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use dbaas_client::{ArchivingState, CreateBaseBackup, DatabaseRecoveryWindow, RecoveryWindow};
use crate::operation::OperationModel;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::ApiJson;
use crate::auth::{Admin, Principal};
use crate::catalog::record::DatabaseRow;
use crate::error::{ApiError, ApiResult};
use crate::managed::pitr::window;
use crate::state::AppState;
use crate::store::instances::{by_name, InstanceRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(instance_recovery))
        .routes(routes!(database_recovery))
        .routes(routes!(create_base_backup))
        .routes(routes!(create_drill))
}

/// The window of a managed instance; a host or repository that cannot be read is a 503.
async fn read(s: &AppState, inst: &InstanceRow) -> ApiResult<RecoveryWindow> {
    window::read(s, inst).await.map_err(|e| ApiError::Unavailable(format!("reading the recovery window: {}", e.message)))
}

async fn managed_instance(s: &AppState, name: &str) -> ApiResult<InstanceRow> {
    match by_name(&s.db, name).await? {
        Some(i) if i.is_managed() => Ok(i),
        Some(_) => Err(ApiError::Unprocessable(
            "not_managed",
            format!("instance {name} is external: point-in-time recovery is for managed instances"),
        )),
        None => Err(ApiError::NotFound("instance")),
    }
}

#[utoipa::path(get, path = "/v1/instances/{name}/recovery", tag = "instances", params(("name" = String, Path)),
    responses((status = 200, body = RecoveryWindow,
        description = "`earliest`/`latest` restorable times, the base backups and archiving health")))]
async fn instance_recovery(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<RecoveryWindow>> {
    let inst = managed_instance(&s, &name).await?;
    Ok(axum::Json(read(&s, &inst).await?))
}

/// The part of the instance's window that applies to a database: not before it was created.
fn database_window(db: &DatabaseRow, w: &RecoveryWindow) -> DatabaseRecoveryWindow {
    let earliest = w.earliest.map(|e| e.max(db.created_at));
    DatabaseRecoveryWindow {
        database_id: db.id,
        archiving: w.archiving,
        earliest,
        latest: w.latest.filter(|l| earliest.is_some_and(|e| *l >= e)),
        last_archived_age_seconds: w.archive.as_ref().and_then(|a| a.last_archived_age_seconds),
    }
}

async fn window_of_database(s: &AppState, db: &DatabaseRow) -> ApiResult<DatabaseRecoveryWindow> {
    let inst = crate::store::databases::load_instance(&s.db, db.instance_id).await?.ok_or(ApiError::NotFound("instance"))?;
    if !inst.is_managed() {
        return Ok(DatabaseRecoveryWindow {
            database_id: db.id,
            archiving: ArchivingState::Unavailable,
            earliest: None,
            latest: None,
            last_archived_age_seconds: None,
        });
    }
    Ok(database_window(db, &read(s, &inst).await?))
}

#[utoipa::path(get, path = "/v1/databases/{id}/recovery", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 200, body = DatabaseRecoveryWindow,
        description = "The times `POST /v1/databases/{id}/restore` with `time` accepts")))]
async fn database_recovery(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<DatabaseRecoveryWindow>> {
    let db = super::restores::own_database(&s, &who, id).await?;
    Ok(axum::Json(window_of_database(&s, &db).await?))
}

/// A restore of `db` to `time` must fall inside its window: a 422 naming the window otherwise,
/// before anything runs.
pub(super) async fn check_time(s: &AppState, db: &DatabaseRow, time: DateTime<Utc>) -> ApiResult<()> {
    let w = window_of_database(s, db).await?;
    if w.archiving != ArchivingState::On {
        return Err(ApiError::field(
            "time",
            "not_available",
            format!("the database's instance has no WAL archive (archiving is {:?})", w.archiving).to_lowercase(),
        ));
    }
    let (Some(earliest), Some(latest)) = (w.earliest, w.latest) else {
        return Err(ApiError::field(
            "time",
            "outside_window",
            "nothing is restorable yet: the first base backup or the first archived WAL is still to come",
        ));
    };
    if time < earliest || time > latest {
        return Err(ApiError::field(
            "time",
            "outside_window",
            format!("{} is outside the recovery window {} to {}", time.to_rfc3339(), earliest.to_rfc3339(), latest.to_rfc3339()),
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/instances/{name}/base-backups", tag = "instances", params(("name" = String, Path)),
    request_body = CreateBaseBackup,
    responses((status = 202, body = dbaas_client::Operation, description = "The base backup's operation"),
        (status = 422, body = dbaas_client::Problem, description = "`not_archiving`, `not_managed`")))]
async fn create_base_backup(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CreateBaseBackup>,
) -> ApiResult<(StatusCode, axum::Json<dbaas_client::Operation>)> {
    let inst = managed_instance(&s, &name).await?;
    if inst.archiving != ArchivingState::On {
        return Err(ApiError::Unprocessable("not_archiving", format!("instance {name} archives no WAL")));
    }
    let mut tx = s.db.begin().await?;
    let job = crate::managed::pitr::jobs::BaseBackup { kind: req.kind, reason: Some("asked for through the API".into()) };
    let op = crate::operation::enqueue(&mut tx, &job, "instance", inst.id, None).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, axum::Json(op.to_model())))
}

#[utoipa::path(post, path = "/v1/instances/{name}/recovery/drills", tag = "instances", params(("name" = String, Path)),
    responses((status = 202, body = dbaas_client::Operation,
        description = "The drill's operation: the archive's end restored into a scratch cluster, started, checked; \
                       its result is the recovery window's `last_drill`"),
        (status = 422, body = dbaas_client::Problem, description = "`not_archiving`, `not_managed`")))]
async fn create_drill(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<dbaas_client::Operation>)> {
    let inst = managed_instance(&s, &name).await?;
    if inst.archiving != ArchivingState::On {
        return Err(ApiError::Unprocessable("not_archiving", format!("instance {name} archives no WAL")));
    }
    let mut tx = s.db.begin().await?;
    let job = crate::managed::pitr::drill::PitrDrill { reason: Some("asked for through the API".into()) };
    let op = crate::operation::enqueue(&mut tx, &job, "instance", inst.id, None).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, axum::Json(op.to_model())))
}
