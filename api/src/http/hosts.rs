//! Hosts (platform admin): machines managed instances are provisioned on.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use dbaas_client::{CreateHost, Host, HostKind, List, PgVersion};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::ApiJson;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::hosts::executor::LocalExecutor;
use crate::hosts::{discover_versions, prepare_data_root, validate_data_root};
use crate::naming::validate_instance_name;
use crate::state::AppState;

const DEFAULT_PORTS: [u16; 2] = [5500, 5599];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_hosts, create_host)).routes(routes!(get_host, delete_host))
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    kind: String,
    address: Option<String>,
    data_root: String,
    port_range_start: i32,
    port_range_end: i32,
    pg_versions: sqlx::types::Json<Vec<PgVersion>>,
    version: i64,
    created_at: DateTime<Utc>,
}

impl From<Row> for Host {
    fn from(r: Row) -> Self {
        Host {
            id: r.id,
            name: r.name,
            kind: if r.kind == "ssh" { HostKind::Ssh } else { HostKind::Local },
            address: r.address,
            data_root: r.data_root,
            port_range: [r.port_range_start as u16, r.port_range_end as u16],
            pg_versions: r.pg_versions.0,
            version: r.version,
            created_at: r.created_at,
        }
    }
}

const SELECT: &str =
    "SELECT id, name, kind, address, data_root, port_range_start, port_range_end, pg_versions, version, created_at FROM hosts";

async fn by_name(s: &AppState, name: &str) -> ApiResult<Row> {
    sqlx::query_as(&format!("{SELECT} WHERE name = $1"))
        .bind(name)
        .fetch_optional(&s.db)
        .await?
        .ok_or(ApiError::NotFound("host"))
}

#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", responses((status = 200, body = List<Host>)))]
async fn list_hosts(State(s): State<AppState>, who: Principal) -> ApiResult<axum::Json<List<Host>>> {
    who.require_admin()?;
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY name")).fetch_all(&s.db).await?;
    Ok(axum::Json(List { items: rows.into_iter().map(Into::into).collect() }))
}

#[utoipa::path(get, path = "/v1/hosts/{name}", tag = "hosts", params(("name" = String, Path)),
    responses((status = 200, body = Host), (status = 404, body = dbaas_client::Problem)))]
async fn get_host(State(s): State<AppState>, who: Principal, Path(name): Path<String>) -> ApiResult<axum::Json<Host>> {
    who.require_admin()?;
    Ok(axum::Json(by_name(&s, &name).await?.into()))
}

#[utoipa::path(post, path = "/v1/hosts", tag = "hosts", request_body = CreateHost,
    responses((status = 201, body = Host, description = "Registered, with the PostgreSQL versions found"),
        (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn create_host(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<CreateHost>,
) -> ApiResult<(StatusCode, axum::Json<Host>)> {
    who.require_admin()?;
    let mut errs = FieldErrors::default();
    errs.check("name", "invalid_name", validate_instance_name(&req.name));
    errs.check("data_root", "invalid_path", validate_data_root(&req.data_root));
    let [lo, hi] = req.port_range.unwrap_or(DEFAULT_PORTS);
    if lo < 1024 || lo > hi || hi - lo > 10_000 {
        errs.add(
            "port_range",
            "invalid_range",
            "must be [start, end] with 1024 <= start <= end and at most 10000 ports",
        );
    }
    match req.kind {
        HostKind::Local => {
            for (f, v) in [("address", req.address.is_some()), ("ssh_user", req.ssh_user.is_some()), ("ssh_private_key", req.ssh_private_key.is_some())] {
                if v {
                    errs.add(f, "not_for_local", "only ssh hosts take connection settings");
                }
            }
        }
        HostKind::Ssh => errs.add(
            "kind",
            "unsupported",
            "ssh hosts are not supported yet (managed instances on remote hosts come with the SSH executor); register a local host",
        ),
    }
    errs.into_result()?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM hosts WHERE name = $1)")
        .bind(&req.name)
        .fetch_one(&s.db)
        .await?;
    if exists {
        return Err(ApiError::Conflict("already_exists", format!("host {:?} already exists", req.name)));
    }

    // Registration checks the host for real: a usable data root and PostgreSQL binaries.
    let exec = LocalExecutor::default();
    prepare_data_root(&exec, &req.data_root).await.map_err(|e| {
        ApiError::field("data_root", "unusable", format!("the postgres user cannot use {}: {e}", req.data_root))
    })?;
    let versions = discover_versions(&exec).await.map_err(|e| {
        ApiError::Unprocessable("host_check_failed", format!("looking for PostgreSQL on the host failed: {e}"))
    })?;
    if versions.is_empty() {
        return Err(ApiError::Unprocessable(
            "no_postgresql",
            "no PostgreSQL server binaries found on the host (pg_config under /usr/lib/postgresql/<version>/bin)"
                .into(),
        ));
    }
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO hosts (id, name, kind, data_root, port_range_start, port_range_end, pg_versions) VALUES ($1, $2, 'local', $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&req.name)
    .bind(&req.data_root)
    .bind(i32::from(lo))
    .bind(i32::from(hi))
    .bind(sqlx::types::Json(&versions))
    .execute(&s.db)
    .await?;
    Ok((StatusCode::CREATED, axum::Json(by_name(&s, &req.name).await?.into())))
}

#[utoipa::path(delete, path = "/v1/hosts/{name}", tag = "hosts", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = dbaas_client::Problem)))]
async fn delete_host(State(s): State<AppState>, who: Principal, Path(name): Path<String>) -> ApiResult<StatusCode> {
    who.require_admin()?;
    let row = by_name(&s, &name).await?;
    // Managed instances will reference their host; until then nothing else does.
    sqlx::query("DELETE FROM hosts WHERE id = $1").bind(row.id).execute(&s.db).await?;
    Ok(StatusCode::NO_CONTENT)
}
