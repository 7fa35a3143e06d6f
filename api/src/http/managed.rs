//! `POST /v1/instances/{name}/actions`: start, stop, restart a managed instance or renew its certificate.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use dbaas_client::{Instance, InstanceAction};

use super::extract::ApiJson;
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::managed::admission;
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/instances/{name}/actions", tag = "instances", params(("name" = String, Path)),
    request_body = InstanceAction,
    responses((status = 202, body = Instance, description = "Enqueued (see last_operation_id)"),
        (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
pub async fn instance_action(
    State(s): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<InstanceAction>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    Ok((StatusCode::ACCEPTED, axum::Json(admission::action(&s, &name, req.action).await?)))
}
