//! Operations: read (with long-poll), list, logs, cancel.

use std::time::Duration;

use axum::extract::{Path, State};
use dbaas_client::{List, Operation, OperationKind, OperationLog, OperationStatus};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{parse_duration, ApiQuery};
use super::pagination::{finish, Page};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::operation::{self as queue, OperationModel, OperationRow, OPERATION_COLUMNS};
use crate::state::AppState;
use dbaas_engine::{runner, OpError, Status};

use crate::ops::job::Job;

const MAX_WAIT: Duration = Duration::from_secs(60);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_operations))
        .routes(routes!(get_operation))
        .routes(routes!(operation_logs))
        .routes(routes!(cancel_operation))
}

async fn visible(s: &AppState, who: &Principal, id: Uuid) -> ApiResult<OperationRow> {
    match queue::fetch(&s.db, id).await? {
        Some(op) if who.tenant_filter().is_none() || who.tenant_filter() == op.tenant_id => Ok(op),
        _ => Err(ApiError::NotFound("operation")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    target_id: Option<Uuid>,
    status: Option<OperationStatus>,
    kind: Option<OperationKind>,
    /// Items per page, newest first (default 100, max 1000).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/operations", tag = "operations", params(ListQuery), responses((status = 200, body = List<Operation>)))]
async fn list_operations(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<axum::Json<List<Operation>>> {
    let page = Page::<i64>::new(q.limit, q.cursor.as_deref())?;
    // Newest first by `seq` (unique): a page starts below the previous page's last.
    let rows: Vec<OperationRow> = sqlx::query_as(&format!(
        "SELECT {OPERATION_COLUMNS} FROM operations o WHERE ($1::uuid IS NULL OR o.tenant_id = $1) \
         AND ($2::uuid IS NULL OR o.target_id = $2) AND ($3::text IS NULL OR o.status = $3) \
         AND ($4::text IS NULL OR o.kind = $4) AND ($6::bigint IS NULL OR o.seq < $6) ORDER BY o.seq DESC LIMIT $5"
    ))
    .bind(who.tenant_filter())
    .bind(q.target_id)
    .bind(q.status.map(|x| x.as_str()))
    .bind(q.kind.map(|k| k.as_str()))
    .bind(page.fetch())
    .bind(page.after)
    .fetch_all(&s.db)
    .await?;
    let (rows, next_cursor) = finish(rows, page.limit, |r| r.seq);
    Ok(axum::Json(List { items: rows.iter().map(OperationRow::to_model).collect(), next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GetQuery {
    /// Long-poll: answer as soon as the operation ends, or after this long (max 60s), e.g. `30s`.
    wait: Option<String>,
}

#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations", params(("id" = Uuid, Path), GetQuery),
    responses((status = 200, body = Operation), (status = 404, body = dbaas_client::Problem)))]
async fn get_operation(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> ApiResult<axum::Json<Operation>> {
    let wait = match &q.wait {
        Some(w) => parse_duration(w).map_err(|m| ApiError::field("wait", "invalid_duration", m))?.min(MAX_WAIT),
        None => Duration::ZERO,
    };
    // Subscribe before reading so an end between the read and the wait is not missed.
    let mut events = s.op_events.subscribe();
    let mut op = visible(&s, &who, id).await?;
    let deadline = tokio::time::Instant::now() + wait;
    while !op.to_model().status.is_terminal() && tokio::time::Instant::now() < deadline {
        // Re-read at least every 2 s in case a NOTIFY was lost with a dropped LISTEN connection.
        let recheck = deadline.min(tokio::time::Instant::now() + Duration::from_secs(2));
        loop {
            match tokio::time::timeout_at(recheck, events.recv()).await {
                Ok(Ok(changed)) if changed != id => continue,
                _ => break,
            }
        }
        op = visible(&s, &who, id).await?;
    }
    Ok(axum::Json(op.to_model()))
}

#[utoipa::path(get, path = "/v1/operations/{id}/logs", tag = "operations", params(("id" = Uuid, Path)),
    responses((status = 200, body = List<OperationLog>)))]
async fn operation_logs(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<List<OperationLog>>> {
    visible(&s, &who, id).await?;
    let rows: Vec<(chrono::DateTime<chrono::Utc>, String, String)> =
        sqlx::query_as("SELECT at, level, message FROM operation_logs WHERE operation_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&s.db)
            .await?;
    // Bounded by the operation's attempts (8 at most) and their steps: one page.
    Ok(axum::Json(List::all(
        rows.into_iter().map(|(at, level, message)| OperationLog { at, level, message }).collect(),
    )))
}

#[utoipa::path(post, path = "/v1/operations/{id}/cancel", tag = "operations", params(("id" = Uuid, Path)),
    responses((status = 200, body = Operation, description = "Cancelled, or cancellation requested from its worker"),
        (status = 409, body = dbaas_client::Problem)))]
async fn cancel_operation(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Operation>> {
    let op = visible(&s, &who, id).await?;
    let status = op.to_model().status;
    if status.is_terminal() {
        return Err(ApiError::Conflict("already_finished", format!("operation already {}", status.as_str())));
    }
    // A queued operation ends here; a running one is stopped by its worker at the next heartbeat.
    let err = OpError::permanent("cancelled", "cancelled on request");
    let ended = runner::complete::<AppState, Job>(&s, &op, None, Status::Cancelled, Some(&err)).await?;
    if !ended || status == OperationStatus::Running {
        sqlx::query("UPDATE operations SET cancel_requested = true WHERE id = $1 AND status IN ('queued', 'running')")
            .bind(id)
            .execute(&s.db)
            .await?;
    }
    Ok(axum::Json(visible(&s, &who, id).await?.to_model()))
}
