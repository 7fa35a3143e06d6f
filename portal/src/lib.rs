//! dbaas-portal: the web portal at `/portal`, served by `dbaas-api` itself: server-rendered pages over the
//! same `/v1` API (called in-process with the signed-in user's token), so a page can show
//! and do exactly what that token may through the API, with the same validation messages.
//!
//! - `session`: sign in with a token, the session cookie, CSRF protection of every form.
//! - `databases`, `database_page`, `database_actions`: the list, the create form, one
//!   database's page and its forms.
//! - `operations`: the live feed and one operation's streaming log.
//! - `admin`: instances, hosts, tenants, tokens and the audit log (platform admins).
//! - `recovery`: point-in-time recovery: a database's window and restore to a time, an
//!   instance's window, base backups and drills.
//!
//! May use: `dbaas-domain` (the process state, token authentication), `dbaas-crypto`, and the
//! API router it is given. Must never: read or write the state database's resources directly
//! (every page goes through the API, so it can do no more than the signed-in token may).

mod admin;
mod api;
mod database_actions;
mod database_page;
mod databases;
mod layout;
mod operations;
mod recovery;
mod session;
mod signed_in;
mod sizes;
mod terraform;
mod timeline;

use axum::middleware::from_fn;
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use dbaas_domain::state::AppState;

/// What every portal handler gets: the service's state and the API to call.
#[derive(Clone)]
pub struct Portal {
    state: AppState,
    api: Router,
    /// Open event streams per session (capped).
    streams: operations::Slots,
}

/// The portal's routes; `api` is the service's router without them (what a client reaches).
pub fn router(state: AppState, api: Router) -> Router {
    Router::new()
        .route("/portal", get(|| async { Redirect::to("/portal/databases") }))
        .route("/portal/", get(|| async { Redirect::to("/portal/databases") }))
        .route("/portal/login", get(session::login_page).post(session::login))
        .route("/portal/logout", post(session::logout))
        .route("/portal/static/portal.css", get(layout::css))
        .route("/portal/static/portal.js", get(layout::js))
        .route("/portal/databases", get(databases::list).post(databases::create))
        .route("/portal/databases/new", get(databases::new_form))
        .route("/portal/databases/{id}", get(database_page::show))
        .route("/portal/databases/{id}/reveal", post(database_actions::reveal))
        .route("/portal/databases/{id}/rotate", post(database_actions::rotate))
        .route("/portal/databases/{id}/leases", post(database_actions::create_lease))
        .route("/portal/databases/{id}/leases/{lease}/revoke", post(database_actions::revoke_lease))
        .route("/portal/databases/{id}/maintenance", post(database_actions::run_maintenance))
        .route("/portal/databases/{id}/backups", post(database_actions::take_backup))
        .route("/portal/databases/{id}/restore", post(database_actions::restore))
        .route("/portal/databases/{id}/restore/undo", post(database_actions::undo_restore))
        .route("/portal/databases/{id}/restore-to-time", post(recovery::restore_to_time))
        .route("/portal/databases/{id}/delete", post(database_actions::delete))
        .route("/portal/backups/{id}/verify", post(database_actions::verify_backup))
        .route("/portal/operations", get(operations::feed))
        .route("/portal/operations/events", get(operations::feed_events))
        .route("/portal/operations/{id}", get(operations::show))
        .route("/portal/operations/{id}/events", get(operations::events))
        .route("/portal/operations/{id}/cancel", post(operations::cancel))
        .route("/portal/admin", get(admin::overview))
        .route("/portal/admin/audit", get(admin::audit))
        .route("/portal/admin/instances/{name}", get(recovery::instance_page))
        .layer(from_fn(layout::security_headers))
        .with_state(Portal { state, api, streams: Default::default() })
}
