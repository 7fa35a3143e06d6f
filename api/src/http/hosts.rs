//! Hosts (platform admin): machines managed instances are provisioned on.

use super::extract::ApiQuery;
use super::pagination::{in_memory, PageQuery};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dbaas_client::{CreateHost, Host, List};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::ApiJson;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::hosts::register::register;
use crate::hosts::HostRecord;
use crate::state::AppState;
use crate::store::hosts;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_hosts, create_host)).routes(routes!(get_host, delete_host))
}

async fn by_name(s: &AppState, name: &str) -> ApiResult<HostRecord> {
    HostRecord::by_name(&s.db, name).await?.ok_or(ApiError::NotFound("host"))
}

#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", params(PageQuery), responses((status = 200, body = List<Host>)))]
async fn list_hosts(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<List<Host>>> {
    let items: Vec<Host> = hosts::list(&s.db).await?.iter().map(HostRecord::view).collect();
    let (items, next_cursor) = in_memory(items, &q, |h: &Host| h.name.clone())?;
    Ok(axum::Json(List { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/hosts/{name}", tag = "hosts", params(("name" = String, Path)),
    responses((status = 200, body = Host), (status = 404, body = dbaas_client::Problem)))]
async fn get_host(State(s): State<AppState>, _: Admin, Path(name): Path<String>) -> ApiResult<axum::Json<Host>> {
    Ok(axum::Json(by_name(&s, &name).await?.view()))
}

#[utoipa::path(post, path = "/v1/hosts", tag = "hosts", request_body = CreateHost,
    responses((status = 201, body = Host, description = "Registered, with the PostgreSQL versions found"),
        (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn create_host(
    State(s): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<CreateHost>,
) -> ApiResult<(StatusCode, axum::Json<Host>)> {
    Ok((StatusCode::CREATED, axum::Json(register(&s.db, &s.key, req).await?)))
}

#[utoipa::path(delete, path = "/v1/hosts/{name}", tag = "hosts", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = dbaas_client::Problem)))]
async fn delete_host(State(s): State<AppState>, _: Admin, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let row = by_name(&s, &name).await?;
    let live = hosts::live_instances(&s.db, row.id).await?;
    if live > 0 {
        return Err(ApiError::Conflict(
            "host_in_use",
            format!("host {name} runs {live} instance(s); delete them first"),
        ));
    }
    dbaas_managed::proxy::sync::retire(&s, &row).await.map_err(|e| anyhow::anyhow!(e.message))?;
    hosts::delete(&s.db, row.id).await?;
    s.hosts.forget(row.id).await;
    Ok(StatusCode::NO_CONTENT)
}
