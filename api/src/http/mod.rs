//! The HTTP surface: one module per resource area, each with its own router.

pub mod audit;
pub mod backups;
pub mod contract;
pub mod credentials;
mod database_list;
mod database_rules;
pub mod databases;
pub mod extract;
pub mod health;
pub mod hosts;
pub mod instances;
pub mod maintenance;
mod managed;
pub mod middleware;
pub mod oidc;
pub mod operations;
pub mod pagination;
mod placement;
pub mod prometheus;
mod recovery;
pub mod reference;
mod restores;
pub mod schedules;
pub mod tenants;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::problem_response;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "dbaas API", description = "Self-service PostgreSQL databases: tenants, instances, databases with read/write/admin roles, credentials, leases and durable operations."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "databases"), (name = "credentials"), (name = "operations"), (name = "maintenance"), (name = "instances"), (name = "hosts"), (name = "tenants"), (name = "tokens"), (name = "backups"), (name = "metrics"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The `/v1` routes and the OpenAPI document generated from their handlers.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(tenants::router())
        .merge(instances::router())
        .merge(hosts::router())
        .merge(databases::router())
        .merge(credentials::router())
        .merge(operations::router())
        .merge(maintenance::router())
        .merge(schedules::router())
        .merge(backups::router())
        .merge(restores::router())
        .merge(recovery::router())
        .merge(prometheus::router())
        .merge(audit::router())
        .merge(oidc::router())
        .split_for_parts();
    contract::complete(&mut doc);
    (router, doc)
}

pub fn app(state: AppState) -> Router {
    let (v1, doc) = api();
    let docs = reference::html(&doc);
    let doc = doc.to_pretty_json().unwrap_or_else(|_| "{}".into());
    // Problems inside idempotency: a stored and replayed answer is already a problem.
    let v1 = v1
        .layer(axum::middleware::from_fn(middleware::problems))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::idempotency))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::audit));
    // What API clients reach; the portal calls it in-process with the user's token.
    let api_app = Router::new()
        .merge(v1)
        .merge(health::router(doc, docs))
        .fallback(|| async {
            problem_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint".into(), vec![]).into_response()
        })
        .method_not_allowed_fallback(|| async {
            problem_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint".into(),
                vec![],
            )
            .into_response()
        })
        .layer(axum::middleware::from_fn(middleware::problems))
        .layer(axum::extract::DefaultBodyLimit::max(middleware::MAX_BODY))
        .with_state(state.clone());
    Router::new()
        .merge(crate::portal::router(state.clone(), api_app.clone()))
        .merge(api_app)
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::metrics))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // Outermost: a client's own x-request-id never reaches the layer above, which keeps
        // one it finds; every request's id (in the answer, the logs and the audit log) is the
        // server's. The portal's calls to the API inside the process carry its request's id.
        .layer(axum::middleware::from_fn(middleware::drop_client_request_id))
}
