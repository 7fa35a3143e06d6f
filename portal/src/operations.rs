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
/// A stream ends after this (the browser reconnects, through the session check again), and
/// at once when the process starts shutting down.
const STREAM_LIFETIME: Duration = Duration::from_secs(300);
/// Event streams one session may hold open at once.
const STREAMS_PER_SESSION: usize = 4;

/// Counts a session's open streams; the count goes down when the stream is dropped.
pub struct StreamSlot {
    slots: Slots,
    session: Vec<u8>,
}

pub type Slots = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, usize>>>;

impl StreamSlot {
    fn take(slots: &Slots, session: &[u8]) -> Option<Self> {
        let mut open = slots.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(session.to_vec()).or_default();
        if *n >= STREAMS_PER_SESSION {
            return None;
        }
        *n += 1;
        Some(Self { slots: slots.clone(), session: session.to_vec() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.session);
            }
        }
    }
}

/// The session's token no longer works (signed out elsewhere, revoked, expired): the stream
/// ends rather than go on with it.
fn auth_gone(e: &super::api::ApiFailure) -> bool {
    matches!(e.status().as_u16(), 401 | 403)
}

/// Ends `stream` at shutdown or after its lifetime, and answers it as server-sent events.
fn sse<S>(portal: &Portal, stream: S) -> Response
where
    S: futures_util::Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let stopping = portal.state.stopping.clone();
    let end = async move {
        tokio::select! {
            _ = stopping.cancelled() => {}
            _ = tokio::time::sleep(STREAM_LIFETIME) => {}
        }
    };
    Sse::new(futures_util::StreamExt::take_until(stream, end)).keep_alive(KeepAlive::default()).into_response()
}

fn too_many_streams() -> Response {
    layout::error_page(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "too many live views open in this session; close some tabs",
    )
}

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
    // Each of these polls the state database while it runs: it counts against the session's
    // cap like the feed, and gives its slot back when it ends.
    let Some(slot) = StreamSlot::take(&portal.streams, &session.id_hash) else { return too_many_streams() };
    struct St {
        api: Api,
        changes: broadcast::Receiver<Uuid>,
        seen: usize,
        status: String,
        done: bool,
        _slot: StreamSlot,
    }
    let st = St {
        api: session.api.clone(),
        changes: portal.state.op_events.subscribe(),
        seen: q.after,
        status: String::new(),
        done: false,
        _slot: slot,
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
    sse(&portal, futures_util::StreamExt::flatten(stream))
}

/// The feed's live part: every operation whose status changes and the session may see.
pub async fn feed_events(State(portal): State<Portal>, session: Session) -> Response {
    let Some(slot) = StreamSlot::take(&portal.streams, &session.id_hash) else { return too_many_streams() };
    let st = (session.api.clone(), portal.state.op_events.subscribe(), slot);
    let stream = stream::unfold(st, |(api, mut changes, slot)| async move {
        loop {
            let id = match changes.recv().await {
                Ok(id) => id,
                // Changes were missed: the page reloads rather than show stale rows.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let ev = Event::default().event("reload").data("lagged");
                    return Some((Ok::<_, Infallible>(ev), (api, changes, slot)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            match api.get::<Operation>(&format!("/v1/operations/{id}")).await {
                Ok(op) => {
                    let ev = Event::default().event("operation").data(row(&op).into_string());
                    return Some((Ok::<_, Infallible>(ev), (api, changes, slot)));
                }
                Err(e) if auth_gone(&e) => return None,
                // Not visible to this session (another tenant's): a 404, skipped.
                Err(_) => continue,
            }
        }
    });
    sse(&portal, stream)
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
