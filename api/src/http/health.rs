//! Liveness, readiness, metrics, and the OpenAPI document with a browsable page.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(openapi: String) -> Router<AppState> {
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
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
}

/// Ready when the state database answers and every migration this binary embeds is applied
/// (a replica newer than the schema must not take traffic).
async fn readyz(State(s): State<AppState>) -> Response {
    let applied: Result<Vec<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(&s.db).await;
    match applied {
        Ok(applied) => {
            let missing: Vec<String> = crate::server::MIGRATOR
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

async fn metrics(State(s): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
        .into_response()
}

/// Renders /openapi.json with Redoc (loaded by the browser from its CDN).
const DOCS_PAGE: &str = r#"<!doctype html>
<html><head><title>dbaas API</title><meta charset="utf-8"/></head>
<body><redoc spec-url="/openapi.json"></redoc>
<noscript>The API description is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>
</body></html>"#;
