//! Hosts (platform admin): machines managed instances are provisioned on.

use super::extract::ApiQuery;
use super::pagination::{in_memory, PageQuery};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dbaas_client::{CreateHost, DatabaseStatus, Host, List, UpdateHost};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::ApiJson;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::hosts::register::register;
use crate::hosts::HostRecord;
use crate::state::AppState;
use crate::store::hosts;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_hosts, create_host)).routes(routes!(get_host, update_host, delete_host))
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

#[utoipa::path(patch, path = "/v1/hosts/{name}", tag = "hosts", params(("name" = String, Path)), request_body = UpdateHost,
    responses((status = 200, body = Host), (status = 404, body = dbaas_client::Problem),
        (status = 422, body = dbaas_client::Problem)))]
/// Turns the host's routing proxy on, moves it to another port, or turns it off. Turning it
/// on re-applies every ready database of the host's instances (a reconcile each): their
/// passwords are set again as the verifiers the proxy's auth file holds.
async fn update_host(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<UpdateHost>,
) -> ApiResult<axum::Json<Host>> {
    let row = by_name(&s, &name).await?;
    match req.proxy_port {
        None => {}
        Some(None) => dbaas_managed::proxy::sync::retire(&s, &row).await.map_err(|e| anyhow::anyhow!(e.message))?,
        Some(Some(port)) if row.proxy_port == Some(i32::from(port)) => {}
        Some(Some(port)) => {
            let exec =
                s.hosts.get(&row, &s.key).await.map_err(|e| {
                    ApiError::Unprocessable("host_unreachable", format!("cannot reach host {name}: {e}"))
                })?;
            let was_off = row.proxy_port.is_none();
            if !was_off {
                // pgbouncer binds its port at start: a new one is a restart.
                dbaas_managed::proxy::sync::stop(&s, &row).await.map_err(|e| anyhow::anyhow!(e.message))?;
            }
            crate::hosts::register::set_proxy_port(&s.db, &s.key, &row, &exec, port).await?;
            if was_off {
                reapply_databases(&s, row.id).await?;
            }
            if let Err(e) = dbaas_managed::proxy::sync::sync_host(&s, row.id).await {
                tracing::warn!(host = %name, error = %e.message, "the proxy did not start yet; the next check retries");
            }
        }
    }
    Ok(axum::Json(by_name(&s, &name).await?.view()))
}

/// A reconcile of every ready database of the host's managed instances.
async fn reapply_databases(s: &AppState, host: uuid::Uuid) -> ApiResult<()> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT d.id FROM databases d JOIN instances i ON i.id = d.instance_id \
         WHERE i.host_id = $1 AND i.kind = 'managed' AND d.status = 'ready'",
    )
    .bind(host)
    .fetch_all(&s.db)
    .await?;
    for id in ids {
        let mut tx = s.db.begin().await?;
        let cur = crate::catalog::record::lock(&mut tx, id).await?;
        if cur.status() == DatabaseStatus::Ready {
            let job = crate::catalog::jobs::ProvisionDatabase { reconcile: true, ..Default::default() };
            super::database_rules::transition(&mut tx, &cur, DatabaseStatus::Provisioning, job.into()).await?;
        }
        tx.commit().await?;
    }
    Ok(())
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
