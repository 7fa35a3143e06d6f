//! Operations: a live feed, and one operation's page whose log streams while it runs
//! (server-sent events; without the script the page reloads itself while it runs).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dbaas_client::{List, Operation, OperationLog};
use futures_util::stream;
use maud::html;
use serde_json::json;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::api::Api;
use super::layout::{self, badge, csrf, label, maybe_when, page, when};
use super::session::{CsrfOnly, Posted, Session};
use super::Portal;

/// How often a running operation's log is read when nothing announced a change (log lines
/// are not announced; status changes are).
const LOG_POLL: Duration = Duration::from_millis(500);

pub async fn feed(State(_): State<Portal>, session: Session) -> Response {
    let ops: List<Operation> = match session.api.get("/v1/operations?limit=50").await {
        Ok(l) => l,
        Err(e) => return layout::error_page(e.status(), &e.message()),
    };
    let body = html! {
        p.hint #feed-state data-live="/portal/operations/events" { "Newest first; new operations and status changes appear as they happen." }
        div.table-wrap { table #operations {
            thead { tr { th scope="col" { "Operation" } th scope="col" { "Status" } th scope="col" { "Tenant" } th scope="col" { "Created" } th scope="col" { "Attempts" } } }
            tbody { @for o in &ops.items { (row(o)) } }
        } }
    };
    page(&session, "Operations", body).into_response()
}

fn row(o: &Operation) -> maud::Markup {
    html! {
        tr data-op=(o.id) {
            td { a href={"/portal/operations/" (o.id)} { (label(&o.kind)) } }
            td.status { (badge(&label(&o.status))) }
            td { (o.tenant.as_deref().unwrap_or("—")) }
            td { (when(&o.created_at)) }
            td { (o.attempts) "/" (o.max_attempts) }
        }
    }
}

pub async fn show(State(_): State<Portal>, session: Session, Path(id): Path<Uuid>) -> Response {
    let op: Operation = match session.api.get(&format!("/v1/operations/{id}")).await {
        Ok(o) => o,
        Err(e) => return layout::error_page(e.status(), &e.message()),
    };
    let logs: Vec<OperationLog> = session
        .api
        .get::<List<OperationLog>>(&format!("/v1/operations/{id}/logs"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let running = !op.status.is_terminal();
    let body = html! {
        dl.grid {
            dt { "Status" } dd { span #op-status { (badge(&label(&op.status))) } }
            dt { "Target" } dd {
                @if op.target_kind == "database" { a href={"/portal/databases/" (op.target_id)} { "database " (op.target_id) } }
                @else { (op.target_kind) " " (op.target_id) }
            }
            dt { "Attempts" } dd #op-attempts { (op.attempts) "/" (op.max_attempts) }
            dt { "Created" } dd { (when(&op.created_at)) }
            dt { "Finished" } dd #op-finished { (maybe_when(op.finished_at.as_ref())) }
        }
        div #op-error role="alert" { @if let Some(e) = &op.error { p.error { (e.code) ": " (e.message) } } }
        @if running {
            form #cancel-form method="post" action={"/portal/operations/" (op.id) "/cancel"} {
                (csrf(&session))
                button.secondary type="submit" { "Cancel" }
            }
            noscript { p { "This page does not update without JavaScript: " a href="" { "reload" } " to see progress." } }
        }
        h2 { "Log" }
        ol #log.log aria-live="polite" data-live=[running.then(|| format!("/portal/operations/{}/events", op.id))] data-count=(logs.len()) {
            @for l in &logs { li class=(l.level) { (when(&l.at)) " " span.level { (l.level) } " " (l.message) } }
        }
    };
    page(&session, &format!("Operation {}", label(&op.kind)), body).into_response()
}

#[derive(serde::Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    after: usize,
}

/// One operation's progress: `log` events (new lines), `status` when it changes, `done`
/// when it has ended (the stream then closes). Seen through the session's own token, so
/// another tenant's operation is a 404 here as in the API.
pub async fn events(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<Uuid>,
    axum::extract::Query(q): axum::extract::Query<EventsQuery>,
) -> Response {
    if let Err(e) = session.api.get::<Operation>(&format!("/v1/operations/{id}")).await {
        return layout::error_page(e.status(), &e.message());
    }
    struct St {
        api: Api,
        changes: broadcast::Receiver<Uuid>,
        seen: usize,
        status: String,
        done: bool,
    }
    let st = St {
        api: session.api.clone(),
        changes: portal.state.op_events.subscribe(),
        seen: q.after,
        status: String::new(),
        done: false,
    };
    let stream = stream::unfold(st, move |mut st| async move {
        if st.done {
            return None;
        }
        let mut out = Vec::new();
        let op: Operation = match st.api.get(&format!("/v1/operations/{id}")).await {
            Ok(o) => o,
            Err(_) => return None,
        };
        if let Ok(logs) = st.api.get::<List<OperationLog>>(&format!("/v1/operations/{id}/logs")).await {
            for l in logs.items.iter().skip(st.seen) {
                out.push(
                    Event::default()
                        .event("log")
                        .data(json!({"at": l.at, "level": l.level, "message": l.message}).to_string()),
                );
            }
            st.seen = st.seen.max(logs.items.len());
        }
        let status = label(&op.status);
        if status != st.status {
            st.status = status.clone();
            out.push(
                Event::default().event("status").data(
                    json!({"status": status, "attempts": op.attempts, "max_attempts": op.max_attempts,
                       "error": op.error.as_ref().map(|e| format!("{}: {}", e.code, e.message))})
                    .to_string(),
                ),
            );
        }
        if op.status.is_terminal() {
            st.done = true;
            out.push(Event::default().event("done").data(status));
        } else if out.is_empty() {
            // Nothing new: wait for a status change of this operation, or the next log poll.
            let _ = tokio::time::timeout(LOG_POLL, async {
                loop {
                    match st.changes.recv().await {
                        Ok(changed) if changed == id => return,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            })
            .await;
        }
        Some((stream::iter(out.into_iter().map(Ok::<_, Infallible>)), st))
    });
    Sse::new(futures_util::StreamExt::flatten(stream)).keep_alive(KeepAlive::default()).into_response()
}

/// The feed's live part: every operation whose status changes and the session may see.
pub async fn feed_events(State(portal): State<Portal>, session: Session) -> Response {
    let st = (session.api.clone(), portal.state.op_events.subscribe());
    let stream = stream::unfold(st, |(api, mut changes)| async move {
        loop {
            let id = match changes.recv().await {
                Ok(id) => id,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            // Not visible to this session (another tenant's): a 404, skipped.
            if let Ok(op) = api.get::<Operation>(&format!("/v1/operations/{id}")).await {
                let ev = Event::default().event("operation").data(row(&op).into_string());
                return Some((Ok::<_, Infallible>(ev), (api, changes)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

pub async fn cancel(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, .. }: Posted<CsrfOnly>,
) -> Response {
    match session.api.post::<_, Operation>(&format!("/v1/operations/{id}/cancel"), &json!({})).await {
        Ok(_) => layout::see_other(&format!("/portal/operations/{id}")),
        Err(e) => layout::error_page(e.status(), &e.message()),
    }
}
