//! `GET /v1/audit` (platform admin): the audit log, newest first, with filters.

use axum::extract::State;
use chrono::{DateTime, Utc};
use dbaas_client::{AuditEntry, List};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::ApiQuery;
use super::pagination::{finish, Page};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this tenant's requests.
    pub tenant: Option<String>,
    /// Only this actor (`admin-token:<id>`, `tenant-token:<tenant>:<id>`, `anonymous`).
    pub actor: Option<String>,
    /// Only actions starting with this, e.g. `DELETE` or `POST /v1/databases`.
    pub action: Option<String>,
    /// Only requests answered with this status code.
    pub status_code: Option<u16>,
    /// Only requests at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only requests before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Items per page (default 100, max 1000).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    tenant: Option<String>,
    action: String,
    target: Option<String>,
    request_id: Option<String>,
    status_code: i32,
}

#[utoipa::path(get, path = "/v1/audit", tag = "tenants", params(AuditQuery),
    responses((status = 200, body = List<AuditEntry>), (status = 403, body = dbaas_client::Problem),
        (status = 422, body = dbaas_client::Problem)))]
async fn list_audit(
    State(s): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<axum::Json<List<AuditEntry>>> {
    if let Some(a) = &q.action {
        if a.len() > 200 {
            return Err(ApiError::field("action", "too_long", "at most 200 characters"));
        }
    }
    if let (Some(since), Some(until)) = (q.since, q.until) {
        if until <= since {
            return Err(ApiError::field("until", "out_of_range", "must be after since"));
        }
    }
    let page = Page::<i64>::new(q.limit, q.cursor.as_deref())?;
    // Newest first: the cursor is the last id shown, the next page the ids below it. The
    // action filter is a prefix match with LIKE's wildcards escaped (they are data here).
    let action_prefix =
        q.action.as_ref().map(|a| format!("{}%", a.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT id, at, actor, tenant, action, target, request_id, status_code FROM audit_log \
         WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR actor = $2) \
           AND ($3::text IS NULL OR action LIKE $3) AND ($4::int IS NULL OR status_code = $4) \
           AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6) \
           AND ($7::bigint IS NULL OR id < $7) \
         ORDER BY id DESC LIMIT $8",
    )
    .bind(&q.tenant)
    .bind(&q.actor)
    .bind(action_prefix)
    .bind(q.status_code.map(i32::from))
    .bind(q.since)
    .bind(q.until)
    .bind(page.after)
    .bind(page.fetch())
    .fetch_all(&s.db)
    .await?;
    let (rows, next_cursor) = finish(rows, page.limit, |r| r.id);
    let items = rows
        .into_iter()
        .map(|r| {
            let status_code = u16::try_from(r.status_code).map_err(|_| {
                ApiError::Internal(anyhow::anyhow!("audit row {} has status code {}", r.id, r.status_code))
            })?;
            Ok(AuditEntry {
                id: r.id,
                at: r.at,
                actor: r.actor,
                tenant: r.tenant,
                action: r.action,
                target: r.target,
                request_id: r.request_id,
                status_code,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(axum::Json(List { items, next_cursor }))
}
