//! Liveness, readiness, metrics, and the OpenAPI document with a browsable page (served from
//! the binary: it loads nothing from elsewhere, so it works on a closed network).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// `openapi` is the document as JSON, `docs` the reference page rendered from it.
pub fn router(openapi: String, docs: String) -> Router<AppState> {
    let doc = openapi.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || {
                let d = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], d) }
            }),
        )
        .route("/docs", get(move || async move { Html(docs) }))
}

/// Ready when the state database answers and every migration this binary embeds is applied
/// (a replica newer than the schema must not take traffic).
async fn readyz(State(s): State<AppState>) -> Response {
    let applied: Result<Vec<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(&s.db).await;
    match applied {
        Ok(applied) => {
            let missing: Vec<String> = dbaas_store::MIGRATOR
                .iter()
                .filter(|m| !applied.contains(&m.version))
                .map(|m| format!("{} {}", m.version, m.description))
                .collect();
            if missing.is_empty() {
                (StatusCode::OK, "ready").into_response()
            } else {
                ApiError::Unavailable(format!("migrations not applied: {}", missing.join(", "))).into_response()
            }
        }
        Err(_) => ApiError::Unavailable("the state database is not reachable".into()).into_response(),
    }
}

/// The service's counters and histograms, then its gauges read from the state database, in
/// the Prometheus text format (the OpenMetrics end marker of the first part is dropped).
async fn metrics(State(s): State<AppState>) -> Response {
    let mut text = s.metrics.encode().replace("# EOF\n", "");
    match crate::observe::service::gauges(&s).await {
        Ok(g) => text.push_str(&g),
        Err(e) => tracing::warn!(error = %e, "service gauges not rendered"),
    }
    ([(header::CONTENT_TYPE, super::prometheus::TEXT_FORMAT)], text).into_response()
}
