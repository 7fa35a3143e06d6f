//! Point-in-time recovery: the recovery window of a managed instance (admin) and of a
//! database (its tenant), base backups on demand, and the check a restore to a time passes
//! before anything runs.

use crate::operation::OperationModel;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use dbaas_client::{
    ArchivingState, CreateBaseBackup, DatabaseRecoveryWindow, Instance, RecoveryTarget, RecoveryWindow,
    RestoreInstance, RestoreTarget,
};
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
        .routes(routes!(restore_instance))
}

/// The window of a managed instance; a host or repository that cannot be read is a 503.
async fn read(s: &AppState, inst: &InstanceRow) -> ApiResult<RecoveryWindow> {
    window::read(s, inst)
        .await
        .map_err(|e| ApiError::Unavailable(format!("reading the recovery window: {}", e.message)))
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
    let inst =
        crate::store::databases::load_instance(&s.db, db.instance_id).await?.ok_or(ApiError::NotFound("instance"))?;
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
    // The scratch cluster is restored from the instance's repository and its timeline: not
    // while the instance itself is being restored (or made, or removed).
    let inst =
        crate::store::databases::load_instance(&s.db, db.instance_id).await?.ok_or(ApiError::NotFound("instance"))?;
    if inst.is_managed() && inst.status() != dbaas_client::InstanceStatus::Ready {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!(
                "the database's instance {} is {}; a restore to a time needs it ready",
                inst.name,
                inst.status().as_str()
            ),
        ));
    }
    let w = window_of_database(s, db).await?;
    if w.archiving != ArchivingState::On {
        return Err(ApiError::field(
            "time",
            "not_available",
            format!("the database's instance has no WAL archive (archiving is {:?})", w.archiving).to_lowercase(),
        ));
    }
    inside(time, w.earliest, w.latest)
}

/// A 422 on `time` naming the window unless `time` lies in it.
fn inside(time: DateTime<Utc>, earliest: Option<DateTime<Utc>>, latest: Option<DateTime<Utc>>) -> ApiResult<()> {
    match (earliest, latest) {
        (Some(e), Some(l)) if e <= time && time <= l => Ok(()),
        (Some(e), Some(l)) => Err(ApiError::field(
            "time",
            "outside_window",
            format!("{} is outside the recovery window {} to {}", time.to_rfc3339(), e.to_rfc3339(), l.to_rfc3339()),
        )),
        _ => Err(ApiError::field(
            "time",
            "outside_window",
            "nothing is restorable yet: the first base backup or the first archived WAL is still to come",
        )),
    }
}

/// An archiving managed instance, or the 422 that says why not.
async fn archiving_instance(s: &AppState, name: &str) -> ApiResult<InstanceRow> {
    let inst = managed_instance(s, name).await?;
    if inst.archiving != ArchivingState::On {
        return Err(ApiError::Unprocessable("not_archiving", format!("instance {name} archives no WAL")));
    }
    Ok(inst)
}

/// Queues `job` on the instance (behind its other operations) and answers with it.
async fn enqueue_on(
    s: &AppState,
    inst: &InstanceRow,
    job: &(impl dbaas_engine::Payload<dbaas_client::OperationKind> + Sync),
) -> ApiResult<(StatusCode, axum::Json<dbaas_client::Operation>)> {
    let mut tx = s.db.begin().await?;
    let op = crate::operation::enqueue(&mut tx, job, "instance", inst.id, None).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, axum::Json(op.to_model())))
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
    let inst = archiving_instance(&s, &name).await?;
    let job =
        crate::managed::pitr::jobs::BaseBackup { kind: req.kind, reason: Some("asked for through the API".into()) };
    enqueue_on(&s, &inst, &job).await
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
    let inst = archiving_instance(&s, &name).await?;
    let job = crate::managed::pitr::drill::PitrDrill { reason: Some("asked for through the API".into()) };
    enqueue_on(&s, &inst, &job).await
}

/// `0/3000060`: two hex numbers of at most 8 digits.
fn valid_lsn(lsn: &str) -> bool {
    lsn.split_once('/').is_some_and(|(hi, lo)| {
        [hi, lo].iter().all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

#[utoipa::path(post, path = "/v1/instances/{name}/restore", tag = "instances", params(("name" = String, Path)),
    request_body = RestoreInstance,
    responses((status = 202, body = Instance,
        description = "`in_place`: this instance, `restoring` until its operation ends; `new`: the new instance, \
                       `provisioning` from the repository"),
        (status = 409, body = dbaas_client::Problem, description = "`invalid_state`, `already_exists`"),
        (status = 422, body = dbaas_client::Problem, description = "`outside_window`, `not_archiving`, field errors")))]
async fn restore_instance(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<RestoreInstance>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    let mut errs = crate::error::FieldErrors::default();
    let given = usize::from(req.time.is_some()) + usize::from(req.lsn.is_some()) + usize::from(req.latest);
    if given != 1 {
        errs.add("time", "one_target", "give exactly one of time, lsn and latest");
    }
    if req.lsn.as_deref().is_some_and(|l| !valid_lsn(l)) {
        errs.add("lsn", "invalid_lsn", "a WAL position such as 0/3000060");
    }
    match (req.target, &req.name) {
        (None, _) => errs.add("target", "required", "new or in_place"),
        (Some(RestoreTarget::New), None) => errs.add("name", "required", "a restore into a new instance names it"),
        (Some(RestoreTarget::InPlace), Some(_)) => {
            errs.add("name", "not_applicable", "an in-place restore keeps the instance's name")
        }
        _ => {}
    }
    errs.into_result()?;
    let inst = archiving_instance(&s, &name).await?;
    let to = match (req.time, req.lsn.clone()) {
        (Some(t), _) => {
            let w = read(&s, &inst).await?;
            inside(t, w.earliest, w.latest)?;
            RecoveryTarget::Time(t)
        }
        (None, Some(l)) => RecoveryTarget::Lsn(l.to_uppercase()),
        (None, None) => RecoveryTarget::Latest,
    };
    if req.target == Some(RestoreTarget::New) {
        let created =
            crate::managed::admission::create_restored(&s, &inst, req.name.as_deref().unwrap_or_default(), to).await?;
        return Ok((StatusCode::ACCEPTED, axum::Json(created)));
    }
    let mut tx = s.db.begin().await?;
    let status: String = sqlx::query_scalar("SELECT status FROM instances WHERE id = $1 FOR UPDATE")
        .bind(inst.id)
        .fetch_one(&mut *tx)
        .await?;
    if !matches!(status.as_str(), "ready" | "stopped" | "failed") {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!("instance {name} is {status}; it cannot be restored now"),
        ));
    }
    let job = crate::managed::pitr::instance_restore::RestoreInstance { to, from: None };
    crate::managed::enqueue(&mut tx, inst.id, &job).await?;
    sqlx::query("UPDATE instances SET status = 'restoring', version = version + 1 WHERE id = $1")
        .bind(inst.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let row = by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    Ok((StatusCode::ACCEPTED, axum::Json(row.to_model())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn lsns() {
        for ok in ["0/3000060", "16/B374D848", "ffffffff/0"] {
            assert!(super::valid_lsn(ok), "{ok}");
        }
        for bad in ["", "0", "/1", "1/", "0/3000060/1", "123456789/0", "0/xyz", "0/1;"] {
            assert!(!super::valid_lsn(bad), "{bad}");
        }
    }
}
