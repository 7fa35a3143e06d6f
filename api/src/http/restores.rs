//! Restores of a database from a backup of its tenant: into a new database, or in place
//! (restored beside it, checked, swapped in; the previous database kept for a while).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use dbaas_client::{
    BackupReason, BackupStatus, CreateDatabase, DatabaseAccepted, DatabaseStatus, RestoreRequest, RestoreTarget,
    UndoRestore,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::database_rules::transition;
use super::databases::{accepted, create_database, Accepted};
use super::extract::{parse_duration, ApiJson};
use crate::auth::Principal;
use crate::backup::policy;
use crate::catalog::jobs::{RestoreAction, RestoreDatabase};
use crate::catalog::record::{self, DatabaseRow};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(restore_database)).routes(routes!(undo_restore))
}

/// The longest an in-place restore keeps the previous database.
const MAX_RETAIN_HOURS: u32 = 720;

/// A database of the caller's tenant, also one deleted since (its backups outlive it).
pub(super) async fn own_database(s: &AppState, who: &Principal, id: Uuid) -> ApiResult<DatabaseRow> {
    match record::load(&s.db, id).await? {
        Some(d) if who.tenant_filter().is_none_or(|t| t == d.tenant_id) => Ok(d),
        _ => Err(ApiError::NotFound("database")),
    }
}

#[utoipa::path(post, path = "/v1/databases/{id}/restore", tag = "backups", params(("id" = Uuid, Path)),
    request_body = RestoreRequest,
    responses((status = 202, body = DatabaseAccepted,
        description = "`new`: the new database, provisioned then filled from the backup; `in_place`: this database, \
                       restored beside it, checked against the backup's manifest, then swapped in")))]
async fn restore_database(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<RestoreRequest>,
) -> ApiResult<Accepted> {
    let mut errs = FieldErrors::default();
    match req.target {
        RestoreTarget::New => {
            if req.name.is_none() {
                errs.add("name", "required", "a restore into a new database names it");
            }
            if req.retain_hours.is_some() || req.grace.is_some() {
                errs.add("target", "not_applicable", "retain_hours and grace apply to in_place restores");
            }
        }
        RestoreTarget::InPlace => {
            if req.name.is_some() {
                errs.add("name", "not_applicable", "an in-place restore keeps the database's name");
            }
            if req.retain_hours.is_some_and(|h| !(1..=MAX_RETAIN_HOURS).contains(&h)) {
                errs.add("retain_hours", "out_of_range", format!("1 to {MAX_RETAIN_HOURS} hours"));
            }
        }
    }
    match (req.backup, req.time) {
        (Some(_), Some(_)) => errs.add("time", "conflict", "give a backup or a time, not both"),
        (None, None) => errs.add("backup", "required", "a restore names a backup, or a time to restore to"),
        _ => {}
    }
    let grace_ms = grace(&mut errs, req.grace.as_deref());
    errs.into_result()?;
    let db = own_database(&s, &who, id).await?;
    let backup = match (req.backup, req.time) {
        (Some(backup), _) => {
            succeeded_backup(&s, &db, backup).await?;
            backup
        }
        (None, Some(time)) => point_in_time_backup(&s, &db, time).await?,
        (None, None) => return Err(ApiError::field("backup", "required", "a restore names a backup or a time")),
    };
    let result = start_restore(s.clone(), who, &db, &req, backup, grace_ms).await;
    if result.is_err() && req.time.is_some() {
        // Refused after its backup was recorded (a name taken, a state changed): that backup
        // will never be made.
        sqlx::query(
            "UPDATE backups SET status = 'failed', error = 'the restore it was made for was refused', \
             finished_at = now() WHERE id = $1 AND status = 'running'",
        )
        .bind(backup)
        .execute(&s.db)
        .await?;
    }
    result
}

/// Only a succeeded backup of this tenant's (the same answer whether another tenant's exists
/// or not).
async fn succeeded_backup(s: &AppState, db: &DatabaseRow, backup: Uuid) -> ApiResult<()> {
    match crate::store::backups::backup(&s.db, backup).await? {
        Some(b) if b.tenant_id == db.tenant_id && b.status == BackupStatus::Succeeded => Ok(()),
        Some(b) if b.tenant_id == db.tenant_id => Err(ApiError::field(
            "backup",
            "not_restorable",
            format!("backup {backup} is {:?}; only a succeeded backup restores", b.status).to_lowercase(),
        )),
        _ => Err(ApiError::field("backup", "unknown_backup", format!("no backup {backup}"))),
    }
}

/// Checks `time` against the database's recovery window and records the backup the restore
/// makes of the database as it was then (dumped from a scratch cluster by the restore's
/// operation).
async fn point_in_time_backup(s: &AppState, db: &DatabaseRow, time: chrono::DateTime<chrono::Utc>) -> ApiResult<Uuid> {
    super::recovery::check_time(s, db, time).await?;
    let env = db.environment;
    let mut tx = s.db.begin().await?;
    let store = policy::choose_store(&mut tx, env, None, db.backup_store_id).await?;
    let id = policy::record(&mut tx, &s.key, db, env, &store, BackupReason::PointInTime, Some(time)).await?;
    tx.commit().await?;
    Ok(id)
}

async fn start_restore(
    s: AppState,
    who: Principal,
    db: &DatabaseRow,
    req: &RestoreRequest,
    backup: Uuid,
    grace_ms: Option<u64>,
) -> ApiResult<Accepted> {
    match req.target {
        RestoreTarget::New => {
            let create = CreateDatabase {
                tenant: Some(db.tenant_name.clone()),
                name: req.name.clone().unwrap_or_default(),
                instance: Some(db.instance_name.clone()),
                placement: None,
                mode: None,
                extensions: db.extensions.clone(),
                connection_limit: Some(db.connection_limit),
                restore_from: Some(backup),
                backup_retention_days: db.backup_retention_days.map(|d| d as u32),
                backup_store: db.backup_store_name.clone(),
                pool_mode: Some(db.pool_mode),
            };
            create_database(State(s.clone()), who, ApiJson(create)).await
        }
        RestoreTarget::InPlace => {
            let mut tx = s.db.begin().await?;
            let cur = record::lock(&mut tx, db.id).await?;
            if cur.status() != DatabaseStatus::Ready {
                return Err(ApiError::Conflict(
                    "invalid_state",
                    format!("database is {}; an in-place restore needs a ready database", cur.status().as_str()),
                ));
            }
            let action =
                RestoreAction::InPlace { backup_id: backup, retain_hours: req.retain_hours.unwrap_or(24), grace_ms };
            let op = transition(&mut tx, &cur, DatabaseStatus::Updating, RestoreDatabase { action }.into()).await?;
            tx.commit().await?;
            accepted(&s, cur.id, Some(op), StatusCode::ACCEPTED).await
        }
    }
}

/// `grace` as milliseconds (at most an hour); a bad one is a field error.
fn grace(errs: &mut FieldErrors, grace: Option<&str>) -> Option<u64> {
    match parse_duration(grace?) {
        Ok(d) if d.as_secs() <= 3600 => Some(d.as_millis() as u64),
        Ok(_) => {
            errs.add("grace", "out_of_range", "at most 1h");
            None
        }
        Err(m) => {
            errs.add("grace", "invalid_duration", m);
            None
        }
    }
}

#[utoipa::path(post, path = "/v1/databases/{id}/restore/undo", tag = "backups", params(("id" = Uuid, Path)),
    request_body = UndoRestore,
    responses((status = 202, body = DatabaseAccepted,
        description = "The database kept by the last in-place restore takes the database's place again; the \
                       restored one is kept in its stead until the same time"),
        (status = 409, body = dbaas_client::Problem,
            description = "`nothing_to_undo`: no previous database is kept; `invalid_state`: not ready")))]
async fn undo_restore(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<UndoRestore>,
) -> ApiResult<Accepted> {
    let mut errs = FieldErrors::default();
    let grace_ms = grace(&mut errs, req.grace.as_deref());
    errs.into_result()?;
    let db = own_database(&s, &who, id).await?;
    let mut tx = s.db.begin().await?;
    let cur = record::lock(&mut tx, db.id).await?;
    if cur.status() != DatabaseStatus::Ready {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!("database is {}; an undo needs a ready database", cur.status().as_str()),
        ));
    }
    if cur.retained_until.is_none_or(|t| t <= chrono::Utc::now()) {
        return Err(ApiError::Conflict(
            "nothing_to_undo",
            "no database is kept from an in-place restore (none was made, or its time is up)".into(),
        ));
    }
    let job = RestoreDatabase { action: RestoreAction::Undo { grace_ms } }.into();
    let op = transition(&mut tx, &cur, DatabaseStatus::Updating, job).await?;
    tx.commit().await?;
    accepted(&s, cur.id, Some(op), StatusCode::ACCEPTED).await
}
