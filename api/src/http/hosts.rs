//! Hosts (platform admin): machines managed instances are provisioned on.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use dbaas_client::{CreateHost, Host, HostKind, List, PgVersion};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::ApiJson;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::hosts::executor::{ExecError, HostExec, LocalExecutor};
use crate::hosts::ssh::{check_private_key, parse_host_key, SshTarget};
use crate::hosts::{discover_versions, ephemeral_ports, prepare_data_root, validate_data_root, HostPool};
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
    ssh_port: Option<i32>,
    ssh_user: Option<String>,
    ssh_known_host_key: Option<String>,
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
            ssh_port: r.ssh_port.map(|p| p as u16),
            ssh_user: r.ssh_user,
            ssh_known_host_key: r.ssh_known_host_key,
            data_root: r.data_root,
            port_range: [r.port_range_start as u16, r.port_range_end as u16],
            pg_versions: r.pg_versions.0,
            version: r.version,
            created_at: r.created_at,
        }
    }
}

const SELECT: &str =
    "SELECT id, name, kind, address, ssh_port, ssh_user, ssh_known_host_key, data_root, port_range_start, port_range_end, pg_versions, version, created_at FROM hosts";

async fn by_name(s: &AppState, name: &str) -> ApiResult<Row> {
    sqlx::query_as(&format!("{SELECT} WHERE name = $1"))
        .bind(name)
        .fetch_optional(&s.db)
        .await?
        .ok_or(ApiError::NotFound("host"))
}

#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", responses((status = 200, body = List<Host>)))]
async fn list_hosts(State(s): State<AppState>, _: Admin) -> ApiResult<axum::Json<List<Host>>> {
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY name")).fetch_all(&s.db).await?;
    Ok(axum::Json(List { items: rows.into_iter().map(Into::into).collect() }))
}

#[utoipa::path(get, path = "/v1/hosts/{name}", tag = "hosts", params(("name" = String, Path)),
    responses((status = 200, body = Host), (status = 404, body = dbaas_client::Problem)))]
async fn get_host(State(s): State<AppState>, _: Admin, Path(name): Path<String>) -> ApiResult<axum::Json<Host>> {
    Ok(axum::Json(by_name(&s, &name).await?.into()))
}

#[utoipa::path(post, path = "/v1/hosts", tag = "hosts", request_body = CreateHost,
    responses((status = 201, body = Host, description = "Registered, with the PostgreSQL versions found"),
        (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn create_host(
    State(s): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<CreateHost>,
) -> ApiResult<(StatusCode, axum::Json<Host>)> {
    Ok((StatusCode::CREATED, axum::Json(register(&s, req).await?)))
}

/// Validates, checks the host for real, and records it (also used by `dev`).
pub async fn register(s: &AppState, req: CreateHost) -> ApiResult<Host> {
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
    let ssh_target = match req.kind {
        HostKind::Local => {
            for (f, v) in [
                ("address", req.address.is_some()),
                ("ssh_port", req.ssh_port.is_some()),
                ("ssh_user", req.ssh_user.is_some()),
                ("ssh_private_key", req.ssh_private_key.is_some()),
                ("ssh_known_host_key", req.ssh_known_host_key.is_some()),
            ] {
                if v {
                    errs.add(f, "not_for_local", "only ssh hosts take connection settings");
                }
            }
            None
        }
        HostKind::Ssh => ssh_target(&req, &mut errs),
    };
    errs.into_result()?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM hosts WHERE name = $1)")
        .bind(&req.name)
        .fetch_one(&s.db)
        .await?;
    if exists {
        return Err(ApiError::Conflict("already_exists", format!("host {:?} already exists", req.name)));
    }

    // Registration checks the host for real: reachable (with the right key), a usable data
    // root and PostgreSQL binaries.
    let exec = match &ssh_target {
        None => HostExec::Local(LocalExecutor::default()),
        Some(t) => HostPool::probe(t).await.map_err(|e| match e {
            ExecError::HostKeyMismatch(m) => ApiError::field(
                "ssh_known_host_key",
                "host_key_mismatch",
                format!("the host presented another key than ssh_known_host_key: {m}"),
            ),
            other => ApiError::field("address", "host_unreachable", format!("cannot log in over SSH: {other}")),
        })?,
    };
    let ephemeral = ephemeral_ports(&exec).await.map_err(|e| {
        ApiError::Unprocessable("host_check_failed", format!("reading the host's ephemeral port range failed: {e}"))
    })?;
    if lo <= *ephemeral.end() && *ephemeral.start() <= hi {
        return Err(ApiError::field(
            "port_range",
            "overlaps_ephemeral_ports",
            format!(
                "{lo}-{hi} overlaps the host's ephemeral port range {}-{} (net.ipv4.ip_local_port_range): \
                 outgoing connections take those ports and would keep servers from listening on them",
                ephemeral.start(),
                ephemeral.end()
            ),
        ));
    }
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
        "INSERT INTO hosts (id, name, kind, data_root, port_range_start, port_range_end, pg_versions, \
         address, ssh_port, ssh_user, ssh_private_key_enc, ssh_known_host_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(&req.name)
    .bind(if ssh_target.is_some() { "ssh" } else { "local" })
    .bind(&req.data_root)
    .bind(i32::from(lo))
    .bind(i32::from(hi))
    .bind(sqlx::types::Json(&versions))
    .bind(ssh_target.as_ref().map(|t| &t.address))
    .bind(ssh_target.as_ref().map(|t| i32::from(t.port)))
    .bind(ssh_target.as_ref().map(|t| &t.user))
    .bind(ssh_target.as_ref().map(|t| s.key.encrypt(&t.private_key, &format!("host:{id}"))))
    .bind(ssh_target.as_ref().map(|t| &t.known_host_key))
    .execute(&s.db)
    .await?;
    Ok(by_name(s, &req.name).await?.into())
}

#[utoipa::path(delete, path = "/v1/hosts/{name}", tag = "hosts", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = dbaas_client::Problem)))]
async fn delete_host(State(s): State<AppState>, _: Admin, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let row = by_name(&s, &name).await?;
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM instances WHERE host_id = $1 AND status <> 'deleted'")
        .bind(row.id)
        .fetch_one(&s.db)
        .await?;
    if live > 0 {
        return Err(ApiError::Conflict(
            "host_in_use",
            format!("host {name} runs {live} instance(s); delete them first"),
        ));
    }
    // Deleted instances keep their history pointing here: then the host is only forgotten
    // by name (renamed out of the way).
    let n =
        sqlx::query("DELETE FROM hosts h WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM instances WHERE host_id = h.id)")
            .bind(row.id)
            .execute(&s.db)
            .await?
            .rows_affected();
    if n == 0 {
        sqlx::query("UPDATE hosts SET name = left(name, 20) || '-deleted-' || left(replace(id::text, '-', ''), 8) WHERE id = $1")
            .bind(row.id)
            .execute(&s.db)
            .await?;
    }
    s.hosts.forget(row.id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The connection settings of an ssh host, each checked (they reach the ssh command line).
fn ssh_target(req: &CreateHost, errs: &mut FieldErrors) -> Option<SshTarget> {
    let address = req.address.clone().unwrap_or_default();
    if !super::instances::valid_host(&address) {
        errs.add("address", "invalid_host", "an ssh host needs its host name or IP address");
    }
    let user = req.ssh_user.clone().unwrap_or_else(|| "root".into());
    let user_ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !user_ok {
        errs.add("ssh_user", "invalid_user", "a login name: letters, digits, '_', '-', '.'");
    }
    if req.ssh_port == Some(0) {
        errs.add("ssh_port", "out_of_range", "must be 1-65535");
    }
    let key = req.ssh_private_key.clone().unwrap_or_default();
    errs.check("ssh_private_key", "invalid_key", check_private_key(&key));
    let host_key = match parse_host_key(req.ssh_known_host_key.as_deref().unwrap_or_default()) {
        Ok(k) => k,
        Err(e) => {
            errs.add("ssh_known_host_key", "invalid_key", e);
            String::new()
        }
    };
    Some(SshTarget { address, port: req.ssh_port.unwrap_or(22), user, private_key: key, known_host_key: host_key })
}
