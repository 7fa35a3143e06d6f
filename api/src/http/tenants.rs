//! Tenants (platform admin) and their tokens.

use super::extract::ApiQuery;
use super::pagination::{finish, Page, PageQuery};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use dbaas_client::{CreateTenant, CreateToken, CreatedToken, List, Tenant, Token, UpdateTenant};
use sqlx::PgExecutor;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{if_match, parse_duration, ApiJson};
use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::naming::validate_tenant_name;
use crate::state::AppState;
use crate::store::tokens;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: Uuid,
    name: String,
    max_databases: i32,
    version: i64,
    created_at: DateTime<Utc>,
    database_count: i64,
}

impl From<TenantRow> for Tenant {
    fn from(r: TenantRow) -> Self {
        Tenant {
            id: r.id,
            name: r.name,
            max_databases: r.max_databases,
            database_count: r.database_count,
            version: r.version,
            created_at: r.created_at,
        }
    }
}

const TENANT_SELECT: &str = "SELECT t.id, t.name, t.max_databases, t.version, t.created_at, \
    (SELECT count(*) FROM databases d WHERE d.tenant_id = t.id AND d.status <> 'deleted') AS database_count FROM tenants t \
    WHERE t.deleted_at IS NULL";

/// Finds a tenant the caller may see; others' tenants do not exist for a tenant token.
pub async fn visible_tenant<'e>(db: impl PgExecutor<'e>, who: &Principal, name: &str) -> ApiResult<(Uuid, String)> {
    if let Some(t) = &who.tenant {
        return if t.name == name { Ok((t.id, t.name.clone())) } else { Err(ApiError::NotFound("tenant")) };
    }
    let row: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, name FROM tenants WHERE name = $1 AND deleted_at IS NULL")
            .bind(name)
            .fetch_optional(db)
            .await?;
    row.ok_or(ApiError::NotFound("tenant"))
}

#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageQuery), responses((status = 200, body = List<Tenant>)))]
async fn list_tenants(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<List<Tenant>>> {
    let page = Page::<String>::new(q.limit, q.cursor.as_deref())?;
    let rows: Vec<TenantRow> = sqlx::query_as(&format!(
        "{TENANT_SELECT} AND ($1::uuid IS NULL OR t.id = $1) AND ($3::text IS NULL OR t.name > $3) ORDER BY t.name LIMIT $2"
    ))
    .bind(who.tenant_filter())
    .bind(page.fetch())
    .bind(&page.after)
    .fetch_all(&s.db)
    .await?;
    let (rows, next_cursor) = finish(rows, page.limit, |t| t.name.clone());
    Ok(axum::Json(List { items: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn create_tenant(
    State(s): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, axum::Json<Tenant>)> {
    let mut errs = FieldErrors::default();
    errs.check("name", "invalid_name", validate_tenant_name(&req.name));
    if req.max_databases.is_some_and(|m| !(0..=100_000).contains(&m)) {
        errs.add("max_databases", "out_of_range", "must be between 0 and 100000");
    }
    errs.into_result()?;
    let id = Uuid::new_v4();
    let inserted = sqlx::query(
        "INSERT INTO tenants (id, name, max_databases) VALUES ($1, $2, $3) \
         ON CONFLICT (name) WHERE deleted_at IS NULL DO NOTHING",
    )
    .bind(id)
    .bind(&req.name)
    .bind(req.max_databases.unwrap_or(50))
    .execute(&s.db)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ApiError::Conflict("already_exists", format!("tenant {:?} already exists", req.name)));
    }
    let row: TenantRow = sqlx::query_as(&format!("{TENANT_SELECT} AND t.id = $1")).bind(id).fetch_one(&s.db).await?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

#[utoipa::path(get, path = "/v1/tenants/{name}", tag = "tenants", params(("name" = String, Path)),
    responses((status = 200, body = Tenant), (status = 404, body = dbaas_client::Problem)))]
async fn get_tenant(
    State(s): State<AppState>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<(HeaderMap, axum::Json<Tenant>)> {
    let (id, _) = visible_tenant(&s.db, &who, &name).await?;
    let row: TenantRow = sqlx::query_as(&format!("{TENANT_SELECT} AND t.id = $1")).bind(id).fetch_one(&s.db).await?;
    let mut h = HeaderMap::new();
    h.insert(axum::http::header::ETAG, format!("\"{}\"", row.version).parse().map_err(anyhow::Error::from)?);
    Ok((h, axum::Json(row.into())))
}

#[utoipa::path(patch, path = "/v1/tenants/{name}", tag = "tenants", params(("name" = String, Path)), request_body = UpdateTenant,
    responses((status = 200, body = Tenant), (status = 409, body = dbaas_client::Problem), (status = 412, body = dbaas_client::Problem)))]
async fn update_tenant(
    State(s): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdateTenant>,
) -> ApiResult<axum::Json<Tenant>> {
    let (id, _) = visible_tenant(&s.db, &who, &name).await?;
    let header_version = if_match(&headers)?;
    if req.max_databases.is_some_and(|m| !(0..=100_000).contains(&m)) {
        return Err(ApiError::field("max_databases", "out_of_range", "must be between 0 and 100000"));
    }
    let expected = header_version.or(req.version);
    let updated = sqlx::query(
        "UPDATE tenants SET max_databases = coalesce($2, max_databases), version = version + 1 \
         WHERE id = $1 AND ($3::bigint IS NULL OR version = $3)",
    )
    .bind(id)
    .bind(req.max_databases)
    .bind(expected)
    .execute(&s.db)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(stale(header_version.is_some()));
    }
    let row: TenantRow = sqlx::query_as(&format!("{TENANT_SELECT} AND t.id = $1")).bind(id).fetch_one(&s.db).await?;
    Ok(axum::Json(row.into()))
}

/// The answer to a write based on an outdated version.
pub fn stale(via_header: bool) -> ApiError {
    let detail = "the resource changed since you read it; read it again and retry".to_string();
    if via_header {
        ApiError::PreconditionFailed(detail)
    } else {
        ApiError::Conflict("version_conflict", detail)
    }
}

#[utoipa::path(delete, path = "/v1/tenants/{name}", tag = "tenants", params(("name" = String, Path)),
    responses((status = 204), (status = 409, body = dbaas_client::Problem)))]
async fn delete_tenant(
    State(s): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let (id, _) = visible_tenant(&s.db, &who, &name).await?;
    let mut tx = s.db.begin().await?;
    // Serialises with database creations, which lock the tenant row too.
    sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE").bind(id).execute(&mut *tx).await?;
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM databases WHERE tenant_id = $1 AND status <> 'deleted'")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if live > 0 {
        return Err(ApiError::Conflict(
            "tenant_not_empty",
            format!("tenant {name} still has {live} database(s); delete them first"),
        ));
    }
    // The row stays for the history that references it (deleted databases, operations);
    // the name is free again and the tenant's tokens stop working.
    sqlx::query("UPDATE tokens SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE tenants SET deleted_at = now(), version = version + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ tokens

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(PageQuery), responses((status = 200, body = List<Token>)))]
async fn list_tokens(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<List<Token>>> {
    let page = Page::<(chrono::DateTime<chrono::Utc>, Uuid)>::new(q.limit, q.cursor.as_deref())?;
    let items = tokens::list(&s.db, who.tenant_filter(), page.after, page.fetch()).await?;
    let (items, next_cursor) = finish(items, page.limit, |t| (t.created_at, t.id));
    Ok(axum::Json(List { items, next_cursor }))
}

#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn create_token(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let tenant_id = match (&req.tenant, &who.tenant) {
        // A tenant may mint tokens for itself only.
        (Some(name), _) => Some(visible_tenant(&s.db, &who, name).await?.0),
        (None, Some(t)) => Some(t.id),
        (None, None) => None,
    };
    let expires_at = match &req.ttl {
        None => None,
        Some(t) => {
            let d = parse_duration(t).map_err(|m| ApiError::field("ttl", "invalid_duration", m))?;
            if d.as_secs() < 60 || d.as_secs() > 3 * 365 * 86_400 {
                return Err(ApiError::field("ttl", "out_of_range", "must be between 60s and 3 years"));
            }
            Some(Utc::now() + chrono::Duration::seconds(d.as_secs() as i64))
        }
    };
    let desc = req.description.unwrap_or_default();
    if desc.len() > 200 {
        return Err(ApiError::field("description", "too_long", "at most 200 characters"));
    }
    let mut tx = s.db.begin().await?;
    if let Some(t) = tenant_id {
        // Counted under the tenant's row lock.
        sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE").bind(t).execute(&mut *tx).await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tokens WHERE tenant_id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(t)
        .fetch_one(&mut *tx)
        .await?;
        if live >= tokens::MAX_PER_TENANT {
            return Err(ApiError::Conflict(
                "quota_exceeded",
                format!(
                    "a tenant may hold at most {} live tokens (it has {live}); revoke some first",
                    tokens::MAX_PER_TENANT
                ),
            ));
        }
    }
    // The minting token (after the tenant row, the order deleting a tenant takes them in),
    // locked against a concurrent revocation (which updates the row):
    // either the revocation commits first and we see it here, or it waits for us and then
    // finds the new token among the children (see `revoke_token`).
    let (parent_expiry, parent_revoked): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT expires_at, revoked_at FROM tokens WHERE id = $1 FOR SHARE")
            .bind(who.token_id)
            .fetch_one(&mut *tx)
            .await?;
    if parent_revoked.is_some() {
        return Err(ApiError::Unauthenticated("token_revoked", "the bearer token has been revoked".into()));
    }
    // A token cannot mint a token that outlives it: without a ttl the new token expires with
    // it; a longer ttl is refused.
    let expires_at = match (parent_expiry, expires_at) {
        (Some(p), None) => Some(p),
        (Some(p), Some(e)) if e > p => {
            return Err(ApiError::field(
                "ttl",
                "outlives_parent",
                format!("this token expires at {}; a token it mints cannot live longer", p.to_rfc3339()),
            ))
        }
        (_, e) => e,
    };
    let created = tokens::issue_child(&mut tx, tenant_id, &desc, expires_at, Some(who.token_id)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", tag = "tokens", params(("id" = Uuid, Path)),
    responses((status = 200, body = Token), (status = 404, body = dbaas_client::Problem)))]
async fn revoke_token(State(s): State<AppState>, who: Principal, Path(id): Path<Uuid>) -> ApiResult<axum::Json<Token>> {
    // The token and, transitively, every token minted from it.
    let tree = "WITH RECURSIVE tree AS ( \
             SELECT id FROM tokens WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) \
             UNION SELECT k.id FROM tokens k JOIN tree ON k.parent_id = tree.id) ";
    let mut tx = s.db.begin().await?;
    let found: i64 = sqlx::query_scalar(&format!("{tree} SELECT count(*) FROM tree"))
        .bind(id)
        .bind(who.tenant_filter())
        .fetch_one(&mut *tx)
        .await?;
    if found == 0 {
        return Err(ApiError::NotFound("token"));
    }
    // Until nothing changes: a token minted concurrently by one of these (it holds its
    // parent's row FOR SHARE, so our update of the parent waited for it) is not in the
    // snapshot of the statement that revoked the parent, but is in the next one's. Rows we
    // revoked stay locked until commit, so they cannot mint more meanwhile.
    loop {
        let n = sqlx::query(&format!(
            "{tree} UPDATE tokens SET revoked_at = now() WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL"
        ))
        .bind(id)
        .bind(who.tenant_filter())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            break;
        }
    }
    tx.commit().await?;
    Ok(axum::Json(tokens::get(&s.db, id).await?))
}
