//! Bearer-token authentication and the caller's identity.

use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::sha256;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Who is calling: a platform admin or one tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: Uuid,
    pub tenant: Option<TenantRef>,
    /// A token that may only read (an OIDC exchange through a read-only binding).
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct TenantRef {
    pub id: Uuid,
    pub name: String,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.tenant.is_none()
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this action needs a platform-admin token".into()))
        }
    }

    /// The tenant filter for queries: `None` for admins (they see all).
    pub fn tenant_filter(&self) -> Option<Uuid> {
        self.tenant.as_ref().map(|t| t.id)
    }

    /// A read-only token reads: any method but GET and HEAD is refused.
    pub fn may(&self, method: &axum::http::Method) -> ApiResult<()> {
        if self.read_only && !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD) {
            return Err(ApiError::Forbidden("this token may only read (its trust binding is read-only)".into()));
        }
        Ok(())
    }

    pub fn actor(&self) -> String {
        match &self.tenant {
            None => format!("admin-token:{}", self.token_id),
            Some(t) => format!("tenant-token:{}:{}", t.name, self.token_id),
        }
    }
}

/// A platform admin. As an extractor placed before the body, it refuses tenants with 403
/// before the body is parsed: a tenant probing an admin route learns nothing of its schema.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let who = Principal::from_request_parts(parts, state).await?;
        who.require_admin()?;
        Ok(Self(who))
    }
}

/// Filled by the extractor so the audit middleware knows the actor of the request.
#[derive(Clone, Default)]
pub struct ActorSlot(pub Arc<OnceLock<Principal>>);

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    tenant_id: Option<Uuid>,
    tenant_name: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    access: String,
}

pub async fn authenticate(db: &PgPool, secret: &str) -> ApiResult<Principal> {
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT t.id, t.tenant_id, n.name AS tenant_name, t.expires_at, \
         coalesce(t.revoked_at, n.deleted_at) AS revoked_at, t.access \
         FROM tokens t LEFT JOIN tenants n ON n.id = t.tenant_id WHERE t.secret_hash = $1",
    )
    .bind(sha256(secret.as_bytes()))
    .fetch_optional(db)
    .await?;
    let row = row.ok_or_else(|| ApiError::Unauthenticated("invalid_token", "the bearer token is not valid".into()))?;
    if row.revoked_at.is_some() {
        return Err(ApiError::Unauthenticated("token_revoked", "the bearer token has been revoked".into()));
    }
    if row.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(ApiError::Unauthenticated("token_expired", "the bearer token has expired".into()));
    }
    let tenant = match (row.tenant_id, row.tenant_name) {
        (Some(id), Some(name)) => Some(TenantRef { id, name }),
        _ => None,
    };
    let read_only = match row.access.as_str() {
        "full" => false,
        "read_only" => true,
        other => return Err(anyhow::anyhow!("token {} has an unknown access {other:?}", row.id).into()),
    };
    Ok(Principal { token_id: row.id, tenant, read_only })
}

/// The bearer secret of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim()).filter(|s| !s.is_empty())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Already authenticated by a middleware of this request (idempotency).
        if let Some(p) = parts.extensions.get::<Principal>().cloned() {
            if let Some(slot) = parts.extensions.get::<ActorSlot>() {
                let _ = slot.0.set(p.clone());
            }
            p.may(&parts.method)?;
            return Ok(p);
        }
        let secret = bearer(parts).ok_or_else(|| {
            ApiError::Unauthenticated("unauthenticated", "send `Authorization: Bearer <token>`".into())
        })?;
        let principal = authenticate(&state.db, secret).await?;
        if let Some(slot) = parts.extensions.get::<ActorSlot>() {
            let _ = slot.0.set(principal.clone());
        }
        principal.may(&parts.method)?;
        Ok(principal)
    }
}
