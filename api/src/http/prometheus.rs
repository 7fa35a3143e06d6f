//! Prometheus discovery and scrape endpoints, and a database's metrics summary.
//!
//! - `GET /v1/prometheus/targets` (platform admin): every instance as an `http_sd_config`
//!   target pointing back at this API, so one scrape config covers instances present and
//!   future.
//! - `GET /v1/prometheus/instances/{name}/metrics` (platform admin): one instance's series.
//! - `GET /v1/prometheus/metrics`: the caller's tenant's databases' series (an admin: all).
//! - `GET /v1/databases/{id}/metrics`: a JSON summary for the database's tenant.
//!
//! All render from the last collection in the state database (see `observe`); a scrape never
//! connects to an instance, so a slow or down instance never slows it.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use dbaas_client::{DatabaseMetrics, PrometheusTarget};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::databases::visible;
use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult};
use crate::observe::render;
use crate::state::AppState;

/// The Prometheus text exposition format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(targets))
        .routes(routes!(instance_metrics))
        .routes(routes!(tenant_metrics))
        .routes(routes!(database_metrics))
}

#[utoipa::path(get, path = "/v1/prometheus/targets", tag = "metrics",
    responses((status = 200, body = Vec<PrometheusTarget>,
        description = "Prometheus `http_sd_config` targets: one per instance, scraped from this API")))]
async fn targets(
    State(s): State<AppState>,
    _: Admin,
    headers: HeaderMap,
) -> ApiResult<axum::Json<Vec<PrometheusTarget>>> {
    // The address Prometheus used to reach us is the one it can scrape.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::field("Host", "required", "a Host header naming this API"))?
        .to_string();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, environment, kind FROM instances WHERE status NOT IN ('deleting', 'deleted') ORDER BY name",
    )
    .fetch_all(&s.db)
    .await?;
    let out = rows
        .into_iter()
        .map(|(name, environment, kind)| PrometheusTarget {
            targets: vec![host.clone()],
            labels: [
                ("__metrics_path__".to_string(), format!("/v1/prometheus/instances/{name}/metrics")),
                ("instance".to_string(), name),
                ("environment".to_string(), environment),
                ("dbaas_instance_kind".to_string(), kind),
            ]
            .into(),
        })
        .collect();
    Ok(axum::Json(out))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response()
}

#[utoipa::path(get, path = "/v1/prometheus/instances/{name}/metrics", tag = "metrics", params(("name" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String,
        description = "The instance's series (postgres_exporter names) from its last collection")))]
async fn instance_metrics(State(s): State<AppState>, _: Admin, Path(name): Path<String>) -> ApiResult<Response> {
    let id: Uuid = sqlx::query_scalar("SELECT id FROM instances WHERE name = $1 AND status <> 'deleted'")
        .bind(&name)
        .fetch_optional(&s.db)
        .await?
        .ok_or(ApiError::NotFound("instance"))?;
    Ok(text(render::instance(&s.db, id).await?))
}

#[utoipa::path(get, path = "/v1/prometheus/metrics", tag = "metrics",
    responses((status = 200, content_type = "text/plain", body = String,
        description = "Series of the caller's tenant's databases (an admin: every tenant's), labelled tenant, database, \
                       environment and instance; scrape with `honor_labels: true`")))]
async fn tenant_metrics(State(s): State<AppState>, who: Principal) -> ApiResult<Response> {
    Ok(text(render::tenant(&s.db, who.tenant_filter()).await?))
}

#[utoipa::path(get, path = "/v1/databases/{id}/metrics", tag = "metrics", params(("id" = Uuid, Path)),
    responses((status = 200, body = DatabaseMetrics, description = "The latest collected values (null until collected)")))]
async fn database_metrics(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<DatabaseMetrics>> {
    let db = visible(&s, &who, id).await?;
    let samples = render::database_values(&s.db, db.id).await?;
    let one = |name: &str| samples.iter().find(|x| x.name == name).map(|x| x.value);
    let sum = |name: &str| -> Option<f64> {
        let v: Vec<f64> = samples.iter().filter(|x| x.name == name).map(|x| x.value).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    };
    let collected_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT m.collected_at FROM instance_metrics m WHERE m.instance_id = $1 AND m.up")
            .bind(db.instance_id)
            .fetch_optional(&s.db)
            .await?;
    let ts = |v: Option<f64>| v.and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0));
    Ok(axum::Json(DatabaseMetrics {
        database_id: db.id,
        collected_at,
        size_bytes: one("pg_database_size_bytes").map(|v| v as i64),
        connections: sum("pg_stat_activity_count").map(|v| v as i64),
        transactions_per_second: one("dbaas_database_transactions_per_second"),
        commits: one("pg_stat_database_xact_commit").map(|v| v as i64),
        rollbacks: one("pg_stat_database_xact_rollback").map(|v| v as i64),
        deadlocks: one("pg_stat_database_deadlocks").map(|v| v as i64),
        dead_tuples: sum("pg_stat_user_tables_n_dead_tup").map(|v| v as i64),
        max_dead_tuple_ratio: one("dbaas_database_max_dead_tuple_ratio"),
        oldest_vacuum_age_seconds: one("dbaas_database_oldest_vacuum_age_seconds"),
        oldest_analyze_age_seconds: one("dbaas_database_oldest_analyze_age_seconds"),
        last_backup_at: ts(one("dbaas_backup_last_success_timestamp_seconds")),
        last_verified_at: ts(one("dbaas_backup_last_verified_timestamp_seconds")),
    }))
}
