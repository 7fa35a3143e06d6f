//! Signing in with an OIDC identity token: trust bindings (platform admin) and the exchange
//! (`POST /v1/auth/oidc`, no bearer token: the identity token is the credential).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use dbaas_client::{CreateOidcBinding, List, OidcBinding, OidcExchange, OidcToken, TokenAccess};
use std::collections::BTreeMap;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::ApiJson;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::oidc::{claims, exchange, jwks};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_bindings, create_binding))
        .routes(routes!(delete_binding))
        .routes(routes!(exchange_token))
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    tenant: String,
    name: String,
    issuer: String,
    audience: String,
    claims: sqlx::types::Json<BTreeMap<String, String>>,
    #[sqlx(try_from = "String")]
    access: TokenAccess,
    unprotected: bool,
    created_at: DateTime<Utc>,
}

impl From<Row> for OidcBinding {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            tenant: r.tenant,
            name: r.name,
            issuer: r.issuer,
            audience: r.audience,
            claims: r.claims.0,
            access: r.access,
            unprotected: r.unprotected,
            created_at: r.created_at,
        }
    }
}

const SELECT: &str = "SELECT b.id, t.name AS tenant, b.name, b.issuer, b.audience, b.claims, b.access, b.unprotected, \
    b.created_at FROM oidc_bindings b JOIN tenants t ON t.id = b.tenant_id";

#[utoipa::path(get, path = "/v1/oidc-bindings", tag = "auth", responses((status = 200, body = List<OidcBinding>)))]
async fn list_bindings(State(s): State<AppState>, _: Admin) -> ApiResult<axum::Json<List<OidcBinding>>> {
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY t.name, b.name")).fetch_all(&s.db).await?;
    Ok(axum::Json(List { items: rows.into_iter().map(Into::into).collect(), next_cursor: None }))
}

#[utoipa::path(post, path = "/v1/oidc-bindings", tag = "auth", request_body = CreateOidcBinding,
    responses((status = 201, body = OidcBinding), (status = 409, body = dbaas_client::Problem),
        (status = 422, body = dbaas_client::Problem)))]
/// Trusts identity tokens of `issuer` for `audience` whose claims match, as `tenant`.
async fn create_binding(
    State(s): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<CreateOidcBinding>,
) -> ApiResult<(StatusCode, axum::Json<OidcBinding>)> {
    let mut errs = FieldErrors::default();
    let name_ok = !req.name.is_empty()
        && req.name.len() <= 40
        && req.name.starts_with(|c: char| c.is_ascii_lowercase())
        && req.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        errs.add("name", "invalid_name", "1-40 lower-case letters, digits and '-', starting with a letter");
    }
    if let Err(m) = jwks::fetchable(&req.issuer) {
        errs.add("issuer", "invalid_issuer", m);
    }
    if req.audience.is_empty() || req.audience.len() > 255 {
        errs.add("audience", "invalid_audience", "1-255 characters: the `aud` the tokens carry");
    }
    for (field, code, message) in claims::check(&req.claims, req.unprotected) {
        errs.add(&field, code, message);
    }
    errs.into_result()?;
    let tenant: Option<Uuid> = sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1 AND deleted_at IS NULL")
        .bind(&req.tenant)
        .fetch_optional(&s.db)
        .await?;
    let tenant = tenant.ok_or_else(|| ApiError::field("tenant", "not_found", format!("no tenant {:?}", req.tenant)))?;
    let id = Uuid::new_v4();
    let inserted = sqlx::query(
        "INSERT INTO oidc_bindings (id, tenant_id, name, issuer, audience, claims, access, unprotected) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, name) DO NOTHING",
    )
    .bind(id)
    .bind(tenant)
    .bind(&req.name)
    .bind(req.issuer.trim_end_matches('/'))
    .bind(&req.audience)
    .bind(sqlx::types::Json(&req.claims))
    .bind(req.access.unwrap_or_default().as_str())
    .bind(req.unprotected)
    .execute(&s.db)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ApiError::Conflict(
            "already_exists",
            format!("tenant {} has a binding {:?}", req.tenant, req.name),
        ));
    }
    let row: Row = sqlx::query_as(&format!("{SELECT} WHERE b.id = $1")).bind(id).fetch_one(&s.db).await?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

#[utoipa::path(delete, path = "/v1/oidc-bindings/{id}", tag = "auth", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = dbaas_client::Problem)))]
/// Removes a binding; the tokens exchanged through it are revoked.
async fn delete_binding(State(s): State<AppState>, _: Admin, Path(id): Path<Uuid>) -> ApiResult<StatusCode> {
    let mut tx = s.db.begin().await?;
    sqlx::query("UPDATE tokens SET revoked_at = now() WHERE oidc_binding_id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query("DELETE FROM oidc_bindings WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound("oidc binding"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/auth/oidc", tag = "auth", request_body = OidcExchange, security(()),
    responses((status = 200, body = OidcToken), (status = 401, body = dbaas_client::Problem,
        description = "Refused: the problem's code names the check that failed")))]
/// Exchanges an identity token (a CI job's) for a short-lived API token of the tenant whose
/// binding matches. No bearer token: the identity token is the credential.
async fn exchange_token(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<OidcExchange>,
) -> ApiResult<axum::Json<OidcToken>> {
    let ok = exchange::verify(&s.db, &req.token, req.tenant.as_deref()).await?;
    let b = &ok.binding;
    let who = exchange::describe(&ok.claims);
    let mut tx = s.db.begin().await?;
    let minted = crate::store::tokens::issue_child(
        &mut tx,
        Some(b.tenant_id),
        &format!("oidc {}: {who}", b.name),
        Some(ok.expires_at),
        None,
    )
    .await?;
    sqlx::query("UPDATE tokens SET access = $2, oidc_binding_id = $3 WHERE id = $1")
        .bind(minted.token.id)
        .bind(&b.access)
        .bind(b.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO audit_log (actor, tenant, action, target, status_code) VALUES ($1, $2, 'oidc.exchange', $3, 200)",
    )
    .bind(format!("oidc:{}", exchange::subject(&ok.claims)))
    .bind(&b.tenant_name)
    .bind(format!("binding {} -> token {}: {who}", b.name, minted.token.id))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(OidcToken {
        token: minted.secret,
        expires_at: ok.expires_at,
        tenant: b.tenant_name.clone(),
        binding: b.name.clone(),
        access: b.access.parse().map_err(|e: String| anyhow::anyhow!(e))?,
    }))
}
