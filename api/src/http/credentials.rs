//! Credentials of a database: the three static logins (readable, rotatable) and leases.

use super::extract::ApiQuery;
use super::pagination::{in_memory, PageQuery};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use dbaas_client::{
    Access, CreateLease, Credential, CredentialAccepted, CredentialKind, DatabaseStatus, List, RotationAccepted,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::databases::visible;
use super::extract::{parse_duration, ApiJson};
use crate::auth::Principal;
use crate::catalog::jobs;
use crate::catalog::record::{self, CredentialRow, DatabaseRow};
use crate::crypto::{generate_password, random_suffix};
use crate::error::{ApiError, ApiResult};
use crate::naming::LEASE_SUFFIX_LEN;
use crate::operation as queue;
use crate::operation::OperationModel;
use crate::state::AppState;

const MIN_LEASE_SECS: u64 = 10;
const MAX_LEASE_SECS: u64 = 30 * 86_400;
/// Live leases one database may have (each is a login role on the shared instance).
pub const MAX_LEASES_PER_DATABASE: i64 = 50;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_credentials))
        .routes(routes!(get_credential))
        .routes(routes!(rotate_credential))
        .routes(routes!(create_lease))
        .routes(routes!(get_lease, revoke_lease))
}

pub(super) fn to_model(s: &AppState, db: &DatabaseRow, c: &CredentialRow) -> ApiResult<Credential> {
    let password = s.key.decrypt(&c.password_enc, &c.context()).map_err(anyhow::Error::from)?;
    let uri = format!(
        "postgresql://{}:{}@{}:{}/{}?sslmode=require",
        pct(&c.role_name),
        pct(&password),
        db.public_host,
        db.port,
        pct(&db.physical().database)
    );
    Ok(Credential {
        id: c.id,
        database_id: c.database_id,
        kind: c.kind,
        access: c.access(),
        status: c.status,
        username: c.role_name.clone(),
        password,
        uri,
        ca_cert: db.ca_cert.clone(),
        expires_at: c.expires_at,
        rotated_at: c.rotated_at,
        created_at: c.created_at,
    })
}

/// Percent-encodes a URI component (our names only hold a-z, 0-9 and '-', but be exact).
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse_access(text: &str) -> ApiResult<Access> {
    text.parse().map_err(|m: String| ApiError::field("access", "invalid_access", m))
}

fn usable(db: &DatabaseRow) -> ApiResult<()> {
    match db.status() {
        DatabaseStatus::Deleting | DatabaseStatus::Deleted | DatabaseStatus::Retained => Err(ApiError::Conflict(
            "invalid_state",
            format!("database is {}; its credentials cannot change", db.status().as_str()),
        )),
        _ => Ok(()),
    }
}

/// Whether a credential is listed: revoked leases are not.
pub(super) fn listed(c: &CredentialRow) -> bool {
    c.status != dbaas_client::CredentialStatus::Revoked
}

/// The order of a database's credentials in lists: static first, then by access and age.
pub(super) fn list_key(c: &CredentialRow) -> (bool, String, chrono::DateTime<Utc>, Uuid) {
    (c.kind != CredentialKind::Static, c.access.as_str().to_string(), c.created_at, c.id)
}

#[utoipa::path(get, path = "/v1/databases/{id}/credentials", tag = "credentials", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = List<Credential>)))]
async fn list_credentials(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<List<Credential>>> {
    let db = visible(&s, &who, id).await?;
    // Bounded (three static roles, at most 50 live leases): static first, then by access
    // and age, as stored.
    let rows: Vec<_> = record::credentials(&s.db, db.id).await?.into_iter().filter(listed).collect();
    let (rows, next_cursor) = in_memory(rows, &q, list_key)?;
    let items = rows.iter().map(|c| to_model(&s, &db, c)).collect::<ApiResult<_>>()?;
    Ok(axum::Json(List { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/databases/{id}/credentials/{access}", tag = "credentials",
    params(("id" = Uuid, Path), ("access" = Access, Path)), responses((status = 200, body = Credential)))]
async fn get_credential(
    State(s): State<AppState>,
    who: Principal,
    Path((id, access)): Path<(Uuid, String)>,
) -> ApiResult<axum::Json<Credential>> {
    let access = parse_access(&access)?;
    let db = visible(&s, &who, id).await?;
    let rows = record::credentials(&s.db, db.id).await?;
    let c = rows
        .iter()
        .find(|c| c.kind == CredentialKind::Static && c.access() == access)
        .ok_or(ApiError::NotFound("credential"))?;
    Ok(axum::Json(to_model(&s, &db, c)?))
}

#[utoipa::path(post, path = "/v1/databases/{id}/credentials/{access}/rotate", tag = "credentials",
    params(("id" = Uuid, Path), ("access" = Access, Path)),
    responses((status = 202, body = RotationAccepted,
        description = "The operation that sets a new password; no password is returned (the current one stops \
                       working when it succeeds): read the credential once it has")))]
async fn rotate_credential(
    State(s): State<AppState>,
    who: Principal,
    Path((id, access)): Path<(Uuid, String)>,
) -> ApiResult<(StatusCode, axum::Json<RotationAccepted>)> {
    let access = parse_access(&access)?;
    let db = visible(&s, &who, id).await?;
    usable(&db)?;
    let mut tx = s.db.begin().await?;
    let c: CredentialRow = sqlx::query_as(&format!(
        "SELECT {} FROM credentials WHERE database_id = $1 AND kind = 'static' AND access = $2 FOR UPDATE",
        record::CREDENTIAL_COLUMNS
    ))
    .bind(db.id)
    .bind(access.as_str())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("credential"))?;
    if c.pending_password_enc.is_some() {
        return Err(ApiError::Conflict(
            "rotation_in_progress",
            "a rotation of this credential is already under way".into(),
        ));
    }
    sqlx::query("UPDATE credentials SET pending_password_enc = $2 WHERE id = $1")
        .bind(c.id)
        .bind(s.key.encrypt(&generate_password(), &c.context()))
        .execute(&mut *tx)
        .await?;
    let job = jobs::RotateCredential { credential_id: c.id };
    let op = queue::enqueue(&mut tx, &job, "database", db.id, Some(db.tenant_id)).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RotationAccepted { database_id: db.id, credential_id: c.id, access, operation: op.to_model() }),
    ))
}

#[utoipa::path(post, path = "/v1/databases/{id}/leases", tag = "credentials", params(("id" = Uuid, Path)), request_body = CreateLease,
    responses((status = 202, body = CredentialAccepted, description = "Usable when the operation succeeds"),
        (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn create_lease(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<CreateLease>,
) -> ApiResult<(StatusCode, axum::Json<CredentialAccepted>)> {
    let ttl = parse_duration(&req.ttl).map_err(|m| ApiError::field("ttl", "invalid_duration", m))?;
    if !(MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&ttl.as_secs()) {
        return Err(ApiError::field(
            "ttl",
            "out_of_range",
            format!("must be between {MIN_LEASE_SECS}s and 30d (got {})", req.ttl),
        ));
    }
    let db = visible(&s, &who, id).await?;
    usable(&db)?;
    let cid = Uuid::new_v4();
    let role = db.physical().lease_role(req.access, &random_suffix(LEASE_SUFFIX_LEN));
    let expires = Utc::now() + chrono::Duration::seconds(ttl.as_secs() as i64);
    let mut tx = s.db.begin().await?;
    // Counted under the database's row lock: concurrent requests cannot pass the cap together.
    record::lock(&mut tx, db.id).await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM credentials WHERE database_id = $1 AND kind = 'lease' AND status IN ('pending', 'active', 'revoking')",
    )
    .bind(db.id)
    .fetch_one(&mut *tx)
    .await?;
    if live >= MAX_LEASES_PER_DATABASE {
        return Err(ApiError::Conflict(
            "quota_exceeded",
            format!("a database may have at most {MAX_LEASES_PER_DATABASE} live leases (it has {live}); revoke some or wait for them to expire"),
        ));
    }
    sqlx::query(
        "INSERT INTO credentials (id, database_id, kind, access, role_name, password_enc, status, expires_at) \
         VALUES ($1, $2, 'lease', $3, $4, $5, 'pending', $6)",
    )
    .bind(cid)
    .bind(db.id)
    .bind(req.access.as_str())
    .bind(&role)
    .bind(s.key.encrypt(&generate_password(), &format!("credential:{cid}")))
    .bind(expires)
    .execute(&mut *tx)
    .await?;
    let op = queue::enqueue(&mut tx, &jobs::CreateLease { credential_id: cid }, "database", db.id, Some(db.tenant_id))
        .await?;
    tx.commit().await?;
    let c = record::credential(&s.db, cid).await?.ok_or(ApiError::NotFound("credential"))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(CredentialAccepted { credential: to_model(&s, &db, &c)?, operation: Some(op.to_model()) }),
    ))
}

async fn lease_of(s: &AppState, db: &DatabaseRow, lease: Uuid) -> ApiResult<CredentialRow> {
    match record::credential(&s.db, lease).await? {
        Some(c) if c.database_id == db.id && c.kind == CredentialKind::Lease => Ok(c),
        _ => Err(ApiError::NotFound("lease")),
    }
}

#[utoipa::path(get, path = "/v1/databases/{id}/leases/{lease}", tag = "credentials",
    params(("id" = Uuid, Path), ("lease" = Uuid, Path)), responses((status = 200, body = Credential)))]
async fn get_lease(
    State(s): State<AppState>,
    who: Principal,
    Path((id, lease)): Path<(Uuid, Uuid)>,
) -> ApiResult<axum::Json<Credential>> {
    let db = visible(&s, &who, id).await?;
    let c = lease_of(&s, &db, lease).await?;
    Ok(axum::Json(to_model(&s, &db, &c)?))
}

#[utoipa::path(delete, path = "/v1/databases/{id}/leases/{lease}", tag = "credentials",
    params(("id" = Uuid, Path), ("lease" = Uuid, Path)), responses((status = 202, body = CredentialAccepted)))]
async fn revoke_lease(
    State(s): State<AppState>,
    who: Principal,
    Path((id, lease)): Path<(Uuid, Uuid)>,
) -> ApiResult<(StatusCode, axum::Json<CredentialAccepted>)> {
    let db = visible(&s, &who, id).await?;
    let c = lease_of(&s, &db, lease).await?;
    let mut tx = s.db.begin().await?;
    let changed =
        sqlx::query("UPDATE credentials SET status = 'revoking' WHERE id = $1 AND status IN ('pending', 'active')")
            .bind(c.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let op = if changed == 1 {
        Some(
            queue::enqueue(
                &mut tx,
                &jobs::RevokeLease { credential_id: c.id, reason: jobs::RevokeReason::Revoked },
                "database",
                db.id,
                Some(db.tenant_id),
            )
            .await?
            .to_model(),
        )
    } else {
        None
    };
    tx.commit().await?;
    let c = lease_of(&s, &db, lease).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(CredentialAccepted { credential: to_model(&s, &db, &c)?, operation: op })))
}
