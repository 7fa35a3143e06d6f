//! Point-in-time recovery in the portal: the restore-to-a-time form's handler (the form and
//! the timeline are drawn by [`super::timeline`] on the database's page), and an instance's
//! window, archiving health and latest drill on its admin page (`/portal/admin/instances/{name}`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use dbaas_client::{DatabaseAccepted, RecoveryWindow, RestoreRequest};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::database_actions::{choice, failed, to_operation};
use super::database_page::{render, Once};
use super::layout::{self, badge, label, maybe_when, notice, page, when};
use super::session::{Posted, Session};
use super::timeline::timeline;
use super::Portal;

#[derive(Deserialize)]
pub struct TimeForm {
    time: String,
    target: String,
    #[serde(default)]
    name: String,
}

/// `datetime-local` text (no zone; the form says UTC), with or without seconds.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc()))
        .or_else(|| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M").ok().map(|n| n.and_utc()))
}

/// `POST /v1/databases/{id}/restore` with a time.
pub async fn restore_to_time(
    State(_): State<Portal>,
    Path(id): Path<Uuid>,
    Posted { session, form }: Posted<TimeForm>,
) -> Response {
    let target = match choice(&session, id, "target", &form.target, "new or in_place").await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let Some(time) = parse_time(&form.time) else {
        let msg = format!("time: {:?} is not a date and time such as 2026-12-03T14:03:00", form.time);
        return render(&session, id, Once::Error(msg), StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let name = Some(form.name.trim().to_string()).filter(|n| !n.is_empty());
    let req = RestoreRequest { backup: None, time: Some(time), target, name, retain_hours: None, grace: None };
    match session.api.post::<_, DatabaseAccepted>(&format!("/v1/databases/{id}/restore"), &req).await {
        Ok(DatabaseAccepted { operation: Some(op), .. }) => to_operation(&op),
        Ok(acc) => layout::see_other(&format!("/portal/databases/{}", acc.database.id)),
        Err(e) => failed(&session, id, e).await,
    }
}

/// An instance's recovery window, base backups, archiving and latest drill (platform admins).
pub async fn instance_page(State(_): State<Portal>, session: Session, Path(name): Path<String>) -> Response {
    if !session.is_admin() {
        return layout::error_page(StatusCode::FORBIDDEN, "platform admins only");
    }
    let w: RecoveryWindow = match session.api.get(&format!("/v1/instances/{name}/recovery")).await {
        Ok(w) => w,
        Err(e) => return layout::error_page(e.status(), &e.message()),
    };
    let ticks: Vec<(DateTime<Utc>, String)> =
        w.base_backups.iter().map(|b| (b.stopped_at, format!("{} backup {}", label(&b.kind), b.label))).collect();
    let body = html! {
        section aria-labelledby="window" {
            h2 #window { "Recovery window" }
            p { "Archiving: " (badge(&label(&w.archiving))) }
            @match (w.earliest, w.latest) {
                (Some(e), Some(l)) => { (timeline(e, l, &ticks)) }
                _ => { p.muted { "Nothing is restorable yet." } }
            }
            @if let Some(a) = &w.archive {
                @if a.failed_count > 0 { (notice("error", &format!("{} failed attempts to archive WAL (last: {})", a.failed_count, a.last_failed_wal.clone().unwrap_or_default()))) }
                p { "Last archived: " (a.last_archived_wal.clone().unwrap_or_else(|| "nothing yet".into())) " " (maybe_when(a.last_archived_at.as_ref())) }
            }
        }
        section aria-labelledby="base-backups" {
            h2 #base-backups { "Base backups" }
            div.table-wrap { table #base-backup-table {
                thead { tr { th scope="col" { "Label" } th scope="col" { "Kind" } th scope="col" { "Finished" } th scope="col" { "Size" } th scope="col" { "Added to the repository" } } }
                tbody { @for b in &w.base_backups { tr {
                    td { (b.label) } td { (label(&b.kind)) } td { (when(&b.stopped_at)) }
                    td { (layout::bytes(Some(b.size_bytes))) } td { (layout::bytes(Some(b.repository_bytes))) }
                } } }
            } }
        }
        section aria-labelledby="drill" {
            h2 #drill { "Latest drill" }
            @match &w.last_drill {
                Some(d) => {
                    p #drill-result { (badge(if d.passed { "passed" } else { "failed" })) " " (when(&d.finished_at))
                        @if let Some(ms) = d.restore_ms { ": restored and recovered in " (ms) " ms" }
                        @if let Some(p) = &d.recovery_point { ", reaching " (when(p)) }
                    }
                    @if let Some(m) = &d.message { p.hint { (m) } }
                }
                None => { p.muted { "No drill yet." } }
            }
        }
    };
    (StatusCode::OK, page(&session, &format!("Instance {name}: recovery"), body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_utc() {
        assert_eq!(parse_time("2026-12-03T14:03:07").unwrap().to_rfc3339(), "2026-12-03T14:03:07+00:00");
        assert_eq!(parse_time("2026-12-03T14:03").unwrap().to_rfc3339(), "2026-12-03T14:03:00+00:00");
        assert_eq!(parse_time("2026-12-03T14:03:07+01:00").unwrap().to_rfc3339(), "2026-12-03T13:03:07+00:00");
        assert!(parse_time("yesterday").is_none());
    }
}
