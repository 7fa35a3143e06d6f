//! Instances: PostgreSQL servers databases are placed on (admin registers; all may read).

use super::extract::ApiQuery;
use super::pagination::{in_memory, PageQuery};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use dbaas_client::{CreateInstance, Instance, InstanceKind, List, UpdateInstance};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{if_match, ApiJson};
use super::tenants::stale;
use crate::auth::{Admin, Principal};
use crate::catalog::conn::{InstanceRow, Target, INSTANCE_COLUMNS};
use crate::catalog::registration;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::managed::admission;
use crate::naming::validate_extension_name;
use crate::state::AppState;
use crate::store::instances;
use dbaas_engine::timing::parse_hhmm;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_instances, create_instance))
        .routes(routes!(get_instance, update_instance, delete_instance))
        .routes(routes!(set_window, clear_window))
        .routes(routes!(super::managed::instance_action))
}

#[utoipa::path(put, path = "/v1/instances/{name}/maintenance-window", tag = "instances", params(("name" = String, Path)),
    request_body = dbaas_client::MaintenanceWindow, responses((status = 200, body = Instance), (status = 422, body = dbaas_client::Problem)))]
async fn set_window(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
    ApiJson(w): ApiJson<dbaas_client::MaintenanceWindow>,
) -> ApiResult<axum::Json<Instance>> {
    let mut errs = FieldErrors::default();
    errs.check("start", "invalid_time", parse_hhmm(&w.start).map(|_| ()));
    errs.check("end", "invalid_time", parse_hhmm(&w.end).map(|_| ()));
    if w.start == w.end {
        errs.add("end", "empty_window", "start and end are equal: the window would never open");
    }
    errs.into_result()?;
    let row = instances::by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    sqlx::query("UPDATE instances SET maintenance_window = $2, version = version + 1 WHERE id = $1")
        .bind(row.id)
        .bind(sqlx::types::Json(&w))
        .execute(&s.db)
        .await?;
    Ok(axum::Json(instances::by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?.to_model()))
}

#[utoipa::path(delete, path = "/v1/instances/{name}/maintenance-window", tag = "instances", params(("name" = String, Path)),
    responses((status = 200, body = Instance, description = "Scheduled maintenance may start at any time")))]
async fn clear_window(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Instance>> {
    let row = instances::by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    sqlx::query("UPDATE instances SET maintenance_window = NULL, version = version + 1 WHERE id = $1")
        .bind(row.id)
        .execute(&s.db)
        .await?;
    Ok(axum::Json(instances::by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?.to_model()))
}

#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(PageQuery),
    responses((status = 200, body = List<Instance>)))]
async fn list_instances(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<List<Instance>>> {
    let rows: Vec<InstanceRow> = sqlx::query_as(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.status <> 'deleted' ORDER BY i.name"
    ))
    .fetch_all(&s.db)
    .await?;
    let items: Vec<Instance> = rows.iter().filter_map(|r| view(&who, r)).collect();
    let (items, next_cursor) = in_memory(items, &q, |i: &Instance| i.name.clone())?;
    Ok(axum::Json(List { items, next_cursor }))
}

/// An instance as the caller may see it. Admins see everything. A tenant sees only what it
/// needs to place and reach databases: no service login, no internal address, no host or
/// data directory of a managed instance, no operations of the platform, and instances
/// dedicated to another tenant do not exist for it.
pub fn view(who: &Principal, row: &InstanceRow) -> Option<Instance> {
    let mut inst = row.to_model();
    let Some(tenant) = &who.tenant else { return Some(inst) };
    if row.dedicated_tenant_id.is_some_and(|t| t != tenant.id) {
        return None;
    }
    inst.host = inst.public_host.clone();
    inst.admin_user = String::new();
    inst.managed = None;
    inst.last_operation_id = None;
    Some(inst)
}

#[utoipa::path(get, path = "/v1/instances/{name}", tag = "instances", params(("name" = String, Path)),
    responses((status = 200, body = Instance), (status = 404, body = dbaas_client::Problem)))]
async fn get_instance(
    State(s): State<AppState>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Instance>> {
    let row = instances::by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    Ok(axum::Json(view(&who, &row).ok_or(ApiError::NotFound("instance"))?))
}

#[utoipa::path(post, path = "/v1/instances", tag = "instances", request_body = CreateInstance,
    responses((status = 201, body = Instance, description = "External instance registered"),
        (status = 202, body = Instance, description = "Managed instance being provisioned (see last_operation_id)"),
        (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn create_instance(
    State(s): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<CreateInstance>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    match req.kind {
        InstanceKind::External => Ok((StatusCode::CREATED, axum::Json(registration::register(&s, req).await?))),
        InstanceKind::Managed => Ok((StatusCode::ACCEPTED, axum::Json(admission::create(&s, req).await?))),
    }
}

#[utoipa::path(patch, path = "/v1/instances/{name}", tag = "instances", params(("name" = String, Path)), request_body = UpdateInstance,
    responses((status = 200, body = Instance), (status = 202, body = Instance, description = "Settings being applied (see last_operation_id)"),
        (status = 409, body = dbaas_client::Problem), (status = 412, body = dbaas_client::Problem)))]
async fn update_instance(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdateInstance>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    let row = instances::by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    let header_version = if_match(&headers)?;
    let mut errs = FieldErrors::default();
    if req.max_databases.is_some_and(|m| !(0..=10_000).contains(&m)) {
        errs.add("max_databases", "out_of_range", "must be between 0 and 10000");
    }
    for (i, e) in req.allowed_extensions.iter().flatten().enumerate() {
        errs.check(&format!("allowed_extensions[{i}]"), "invalid_extension", validate_extension_name(e));
    }
    if row.is_managed() && req.admin_password.is_some() {
        errs.add("admin_password", "managed_only", "the service owns the admin login of a managed instance");
    }
    if !row.is_managed() && req.settings.is_some() {
        errs.add("settings", "managed_only", "settings are applied to managed instances only");
    }
    errs.into_result()?;
    // Settings are checked by the server binary before anything is accepted.
    let settings = match &req.settings {
        Some(new) if *new != row.settings.0 => Some(admission::check_update(&s, &row, new).await?),
        _ => None,
    };
    let password = match &req.admin_password {
        Some(p) => {
            let t = Target::new(&row.host, row.port as u16, &row.admin_user, p, row.sslmode, row.ca_cert.as_deref());
            registration::verify(&t, req.allowed_extensions.as_deref().unwrap_or(&[])).await?;
            Some(s.key.encrypt(p, &format!("instance:{}", row.id)))
        }
        None => None,
    };
    let mut tx = s.db.begin().await?;
    let n = sqlx::query(
        "UPDATE instances SET admin_password_enc = coalesce($2, admin_password_enc), labels = coalesce($3, labels), \
         max_databases = coalesce($4, max_databases), allowed_extensions = coalesce($5, allowed_extensions), \
         protected = coalesce($7, protected), auto_restart = coalesce($8, auto_restart), \
         version = version + 1 WHERE id = $1 AND ($6::bigint IS NULL OR version = $6)",
    )
    .bind(row.id)
    .bind(password)
    .bind(req.labels.as_ref().map(sqlx::types::Json))
    .bind(req.max_databases)
    .bind(req.allowed_extensions.as_ref())
    .bind(header_version.or(req.version))
    .bind(req.protected)
    .bind(req.auto_restart)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(stale(header_version.is_some()));
    }
    let status = match settings {
        Some(new) => {
            crate::managed::enqueue(&mut tx, row.id, &crate::managed::jobs::UpdateInstance { settings: new }).await?;
            StatusCode::ACCEPTED
        }
        None => StatusCode::OK,
    };
    tx.commit().await?;
    let row = instances::by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    Ok((status, axum::Json(row.to_model())))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// Managed instances: delete even while it holds databases (they are dropped with it).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(delete, path = "/v1/instances/{name}", tag = "instances", params(("name" = String, Path), DeleteQuery),
    responses((status = 204, description = "External instance unregistered"),
        (status = 202, body = Instance, description = "Managed instance being stopped and removed (see last_operation_id)"),
        (status = 409, body = dbaas_client::Problem)))]
async fn delete_instance(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
    super::extract::ApiQuery(q): super::extract::ApiQuery<DeleteQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let row = instances::by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    if row.protected {
        return Err(ApiError::Conflict(
            "protected",
            format!("instance {name} is protected; set protected = false first if it really must go"),
        ));
    }
    if row.database_count > 0 && !(q.force && row.is_managed()) {
        let hint = if row.is_managed() { "; delete them first, or pass ?force=true to drop them with it" } else { "" };
        return Err(ApiError::Conflict(
            "instance_in_use",
            format!("instance {name} holds {} database(s){hint}", row.database_count),
        ));
    }
    if row.is_managed() {
        let inst = admission::delete(&s, &row).await?;
        return Ok((StatusCode::ACCEPTED, axum::Json(inst)).into_response());
    }
    // Deleted databases keep their history pointing here: then the row stays, marked deleted.
    sqlx::query(
        "UPDATE instances SET status = 'deleted', deleted_at = now(), version = version + 1 WHERE id = $1 \
         AND EXISTS (SELECT 1 FROM databases WHERE instance_id = $1)",
    )
    .bind(row.id)
    .execute(&s.db)
    .await?;
    sqlx::query("DELETE FROM instances WHERE id = $1 AND status <> 'deleted'").bind(row.id).execute(&s.db).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
