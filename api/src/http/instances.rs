//! Instances: PostgreSQL servers databases are placed on (admin registers; all may read).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use dbaas_client::{CreateInstance, Instance, InstanceKind, List, SslMode, UpdateInstance};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{if_match, ApiJson};
use super::tenants::stale;
use crate::auth::{Admin, Principal};
use crate::catalog::conn::{InstanceRow, Target, INSTANCE_COLUMNS, MAINTENANCE_DB};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::naming::{validate_extension_name, validate_instance_name};
use crate::ops::timing::parse_hhmm;
use crate::state::AppState;

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
    let row = by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    sqlx::query("UPDATE instances SET maintenance_window = $2, version = version + 1 WHERE id = $1")
        .bind(row.id)
        .bind(sqlx::types::Json(&w))
        .execute(&s.db)
        .await?;
    Ok(axum::Json(by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?.to_model()))
}

#[utoipa::path(delete, path = "/v1/instances/{name}/maintenance-window", tag = "instances", params(("name" = String, Path)),
    responses((status = 200, body = Instance, description = "Scheduled maintenance may start at any time")))]
async fn clear_window(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Instance>> {
    let row = by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    sqlx::query("UPDATE instances SET maintenance_window = NULL, version = version + 1 WHERE id = $1")
        .bind(row.id)
        .execute(&s.db)
        .await?;
    Ok(axum::Json(by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?.to_model()))
}

pub async fn by_name(db: &sqlx::PgPool, name: &str) -> ApiResult<Option<InstanceRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.name = $1 AND i.status <> 'deleted'"
    ))
    .bind(name)
    .fetch_optional(db)
    .await?)
}

#[utoipa::path(get, path = "/v1/instances", tag = "instances", responses((status = 200, body = List<Instance>)))]
async fn list_instances(State(s): State<AppState>, who: Principal) -> ApiResult<axum::Json<List<Instance>>> {
    let rows: Vec<InstanceRow> = sqlx::query_as(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.status <> 'deleted' ORDER BY i.name"
    ))
    .fetch_all(&s.db)
    .await?;
    Ok(axum::Json(List { items: rows.iter().filter_map(|r| view(&who, r)).collect() }))
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
    let row = by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
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
        InstanceKind::External => Ok((StatusCode::CREATED, axum::Json(register(&s, req).await?))),
        InstanceKind::Managed => Ok((StatusCode::ACCEPTED, axum::Json(super::managed::create(&s, req).await?))),
    }
}

/// Checks shared by both kinds; returns the dedicated tenant's id.
pub async fn check_common(s: &AppState, req: &CreateInstance, errs: &mut FieldErrors) -> ApiResult<Option<Uuid>> {
    errs.check("name", "invalid_name", validate_instance_name(&req.name));
    if !(0..=10_000).contains(&req.max_databases) {
        errs.add("max_databases", "out_of_range", "must be between 0 and 10000");
    }
    for (i, e) in req.allowed_extensions.iter().enumerate() {
        errs.check(&format!("allowed_extensions[{i}]"), "invalid_extension", validate_extension_name(e));
    }
    for k in req.labels.keys() {
        if k.is_empty() || k.len() > 63 {
            errs.add("labels", "invalid_label", format!("label key {k:?} must be 1 to 63 characters"));
        }
    }
    if let Some(p) = &req.public_host {
        if !valid_host(p) {
            errs.add("public_host", "invalid_host", "must be a host name or IP address");
        }
    }
    let Some(tenant) = &req.dedicated_tenant else { return Ok(None) };
    let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1 AND deleted_at IS NULL")
        .bind(tenant)
        .fetch_optional(&s.db)
        .await?;
    if id.is_none() {
        errs.add("dedicated_tenant", "unknown_tenant", format!("no tenant named {tenant:?}"));
    }
    Ok(id)
}

/// A host name or IP address: no spaces, slashes or leading '-' (it reaches command lines).
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && !h.starts_with('-')
        && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
}

/// What a connectivity and privilege check found.
struct Verified {
    server_version: String,
}

/// Validates, verifies against the server, and records an external instance.
pub async fn register(s: &AppState, req: CreateInstance) -> ApiResult<Instance> {
    let mut errs = FieldErrors::default();
    let dedicated = check_common(s, &req, &mut errs).await?;
    if !valid_host(&req.host) {
        errs.add("host", "invalid_host", "must be a host name or IP address");
    }
    let port = req.port.unwrap_or(5432);
    if port == 0 {
        errs.add("port", "out_of_range", "must be 1-65535");
    }
    let admin_user = req.admin_user.clone().unwrap_or_default();
    let admin_password = req.admin_password.clone().unwrap_or_default();
    if admin_user.is_empty() || admin_user.len() > 63 {
        errs.add("admin_user", "required", "an external instance needs an admin login of 1 to 63 bytes");
    }
    if admin_password.is_empty() {
        errs.add("admin_password", "required", "must not be empty");
    }
    // Given a CA, the default is to verify the server with it; `prefer` would accept any
    // certificate, or none.
    let sslmode = match (req.sslmode, &req.ca_cert) {
        (SslMode::Prefer, Some(_)) => SslMode::VerifyFull,
        (m, _) => m,
    };
    if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && req.ca_cert.is_none() {
        errs.add("ca_cert", "required", "verify-ca and verify-full need the instance's CA certificate");
    }
    if matches!(sslmode, SslMode::Disable | SslMode::Prefer) && !is_loopback(&req.host) {
        errs.add(
            "sslmode",
            "insecure",
            "disable and prefer would let the admin password cross the network without TLS; use require, \
             verify-ca or verify-full (verify-full with ca_cert is the default when a CA is given)",
        );
    }
    if req.version.is_some() {
        errs.add("version", "managed_only", "the version of an external instance is read from the server");
    }
    if !req.settings.is_empty() {
        errs.add("settings", "managed_only", "settings are applied to managed instances only");
    }
    errs.into_result()?;
    if by_name(&s.db, &req.name).await?.is_some() {
        return Err(ApiError::Conflict("already_exists", format!("instance {:?} already exists", req.name)));
    }
    let target = Target::new(&req.host, port, &admin_user, &admin_password, sslmode, req.ca_cert.as_deref());
    let verified = verify(&target, &req.allowed_extensions).await?;

    let id = Uuid::new_v4();
    let enc = s.key.encrypt(&admin_password, &format!("instance:{id}"));
    sqlx::query(
        "INSERT INTO instances (id, name, kind, host, port, public_host, admin_user, admin_password_enc, sslmode, ca_cert, \
         environment, labels, max_databases, allowed_extensions, server_version, dedicated_tenant_id, protected) \
         VALUES ($1, $2, 'external', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(id)
    .bind(&req.name)
    .bind(&req.host)
    .bind(i32::from(port))
    .bind(req.public_host.as_deref().unwrap_or(&req.host))
    .bind(&admin_user)
    .bind(enc)
    .bind(sslmode.as_str())
    .bind(&req.ca_cert)
    .bind(req.environment.as_str())
    .bind(sqlx::types::Json(&req.labels))
    .bind(req.max_databases)
    .bind(&req.allowed_extensions)
    .bind(&verified.server_version)
    .bind(dedicated)
    .bind(req.protected)
    .execute(&s.db)
    .await?;
    let row = by_name(&s.db, &req.name).await?.ok_or(ApiError::NotFound("instance"))?;
    Ok(row.to_model())
}

/// The instance is on this machine (traffic to it never crosses a network).
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.starts_with('/') || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Connects and checks the login may create databases and roles.
async fn verify(target: &Target, extensions: &[String]) -> ApiResult<Verified> {
    let mut conn = target.connect(MAINTENANCE_DB).await.map_err(|e| {
        ApiError::Unprocessable(
            "instance_unreachable",
            format!("cannot connect to the instance: {} ({})", e.message, e.code),
        )
    })?;
    let (superuser, createdb, createrole, version): (bool, bool, bool, String) = sqlx::query_as(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, pg_catalog.current_setting('server_version') \
         FROM pg_catalog.pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| {
        ApiError::Unprocessable("instance_check_failed", format!("reading the login's privileges failed: {e}"))
    })?;
    if !(superuser || (createdb && createrole)) {
        let mut missing = Vec::new();
        if !createdb {
            missing.push("CREATEDB");
        }
        if !createrole {
            missing.push("CREATEROLE");
        }
        return Err(ApiError::Unprocessable(
            "insufficient_privileges",
            format!("the admin login lacks {} (it needs SUPERUSER, or CREATEDB and CREATEROLE)", missing.join(" and ")),
        ));
    }
    if superuser {
        // An MD5-stored password means MD5 authentication (weak, replayable hashes); where we
        // can see it (a superuser login may read pg_authid), refuse it.
        let md5: bool = sqlx::query_scalar(
            "SELECT coalesce(rolpassword LIKE 'md5%', false) FROM pg_catalog.pg_authid WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await?;
        if md5 {
            return Err(ApiError::field(
                "admin_password",
                "md5_password",
                "the admin login's password is stored as MD5; set password_encryption = 'scram-sha-256', set the \
                 password again and use scram-sha-256 in pg_hba.conf",
            ));
        }
    }
    if !extensions.is_empty() {
        let available: Vec<String> = sqlx::query_scalar("SELECT name::text FROM pg_catalog.pg_available_extensions")
            .fetch_all(&mut conn)
            .await?;
        let mut errs = FieldErrors::default();
        for (i, e) in extensions.iter().enumerate() {
            if !available.contains(e) {
                errs.add(
                    &format!("allowed_extensions[{i}]"),
                    "unavailable",
                    format!("extension {e:?} is not installed on the server"),
                );
            }
        }
        errs.into_result()?;
    }
    Ok(Verified { server_version: version })
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
    let row = by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
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
        Some(new) if *new != row.settings.0 => Some(super::managed::check_update(&s, &row, new).await?),
        _ => None,
    };
    let password = match &req.admin_password {
        Some(p) => {
            let t = Target::new(&row.host, row.port as u16, &row.admin_user, p, row.sslmode, row.ca_cert.as_deref());
            verify(&t, req.allowed_extensions.as_deref().unwrap_or(&[])).await?;
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
            crate::managed::enqueue(&mut tx, row.id, crate::managed::jobs::UpdateInstance { settings: new }.into())
                .await?;
            StatusCode::ACCEPTED
        }
        None => StatusCode::OK,
    };
    tx.commit().await?;
    let row = by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
    Ok((status, axum::Json(row.to_model())))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
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
    let row = by_name(&s.db, &name).await?.ok_or(ApiError::NotFound("instance"))?;
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
        let inst = super::managed::delete(&s, &row).await?;
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
