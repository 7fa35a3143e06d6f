//! Maintenance on demand: repack, vacuum, analyze, reindex — one operation per request.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use dbaas_client::{CreateMaintenance, DatabaseStatus, MaintenanceAccepted};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::databases::visible;
use super::extract::{parse_duration, ApiJson};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::operation as queue;
use crate::operation::OperationModel;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_maintenance))
}

/// `schema.table` with plain identifiers (what pg_repack and our logs take as is).
pub fn validate_table(name: &str) -> Result<(), String> {
    let ident = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    match name.split_once('.') {
        Some((schema, table)) if ident(schema) && ident(table) => Ok(()),
        _ => Err(format!(
            "{name:?} must be a schema-qualified table such as public.orders (letters, digits, '_' and '$')"
        )),
    }
}

pub fn validate(req: &CreateMaintenance) -> ApiResult<()> {
    let mut errs = FieldErrors::default();
    for (i, t) in req.tables.iter().enumerate() {
        errs.check(&format!("tables[{i}]"), "invalid_table", validate_table(t));
    }
    if req.tables.len() > 1000 {
        errs.add("tables", "too_many", "at most 1000 tables per run");
    }
    let o = &req.options;
    if o.bloat_threshold_percent.is_some_and(|b| !(0.0..=100.0).contains(&b)) {
        errs.add("options.bloat_threshold_percent", "out_of_range", "must be between 0 and 100");
    }
    if o.jobs.is_some_and(|j| !(1..=8).contains(&j)) {
        errs.add("options.jobs", "out_of_range", "must be 1-8");
    }
    for (field, value, max) in [
        ("options.lock_timeout", &o.lock_timeout, 600),
        ("options.max_transaction_age", &o.max_transaction_age, 86_400),
        ("options.statement_timeout", &o.statement_timeout, 86_400),
    ] {
        if let Some(v) = value {
            match parse_duration(v) {
                Ok(d) if d.as_secs() >= 1 && d.as_secs() <= max => {}
                Ok(_) => errs.add(field, "out_of_range", format!("must be between 1s and {max}s")),
                Err(m) => errs.add(field, "invalid_duration", m),
            }
        }
    }
    errs.into_result()
}

#[utoipa::path(post, path = "/v1/databases/{id}/maintenance", tag = "maintenance", params(("id" = Uuid, Path)),
    request_body = CreateMaintenance,
    responses((status = 202, body = MaintenanceAccepted, description = "Its log shows each table's progress and sizes"),
        (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn start_maintenance(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<CreateMaintenance>,
) -> ApiResult<(StatusCode, axum::Json<MaintenanceAccepted>)> {
    validate(&req)?;
    let db = visible(&s, &who, id).await?;
    if db.status() != DatabaseStatus::Ready {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!("database is {}; maintenance runs on ready databases", db.status().as_str()),
        ));
    }
    let job = crate::catalog::jobs::Maintenance { request: req, scheduled: None };
    let mut tx = s.db.begin().await?;
    let op = queue::enqueue(&mut tx, &job, "database", db.id, Some(db.tenant_id)).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, axum::Json(MaintenanceAccepted { operation: op.to_model() })))
}
