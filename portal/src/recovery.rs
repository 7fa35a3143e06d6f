//! Point-in-time recovery in the portal: the recovery window as a timeline (base backups as
//! ticks) with a restore form that takes a time, on a database's page; an instance's window,
//! archiving health and latest drill on its admin page (`/portal/admin/instances/{name}`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use dbaas_client::{
    ArchivingState, Database, DatabaseAccepted, DatabaseRecoveryWindow, RecoveryWindow, RestoreRequest,
};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::database_actions::{choice, failed, to_operation};
use super::database_page::{render, Once};
use super::layout::{self, badge, csrf, label, maybe_when, notice, page, when};
use super::session::{Posted, Session};
use super::Portal;

/// An inline SVG bar from `from` to `to` with a tick per `(time, title)`.
fn timeline(from: DateTime<Utc>, to: DateTime<Utc>, ticks: &[(DateTime<Utc>, String)]) -> Markup {
    let span = (to - from).num_milliseconds().max(1) as f64;
    let x = |t: DateTime<Utc>| (((t - from).num_milliseconds() as f64 / span) * 1000.0).clamp(0.0, 1000.0);
    html! {
        figure.timeline {
            svg viewBox="0 0 1000 36" width="100%" height="36" role="img"
                aria-label={"Restorable from " (from.to_rfc3339()) " to " (to.to_rfc3339())} {
                rect x="0" y="12" width="1000" height="12" rx="3" class="window" {}
                @for (t, title) in ticks {
                    line x1=(format!("{:.1}", x(*t))) x2=(format!("{:.1}", x(*t))) y1="4" y2="32" class="tick" { title { (title) } }
                }
            }
            figcaption { (when(&from)) " — " (when(&to)) }
        }
    }
}

/// The database page's section: its window and the restore-to-a-time form.
pub(super) fn database_section(session: &Session, db: &Database, w: Option<&DatabaseRecoveryWindow>) -> Markup {
    let Some(w) = w.filter(|w| w.archiving != ArchivingState::Unavailable) else { return html! {} };
    html! {
        section aria-labelledby="recovery" {
            h2 #recovery { "Point-in-time recovery" }
            @match (w.earliest, w.latest) {
                (Some(e), Some(l)) => {
                    (timeline(e, l, &[]))
                    @if let Some(age) = w.last_archived_age_seconds { p.hint { "WAL last archived " (age) " s ago." } }
                    form.restore #restore-to-time method="post" action={"/portal/databases/" (db.id) "/restore-to-time"} {
                        (csrf(session))
                        label for="pitr-time" { "Restore to (UTC)" }
                        input #pitr-time type="datetime-local" step="1" name="time" required
                            min=(e.format("%Y-%m-%dT%H:%M:%S")) max=(l.format("%Y-%m-%dT%H:%M:%S"));
                        label for="pitr-target" { "as" }
                        select #pitr-target name="target" { option value="new" { "a new database" } option value="in_place" { "this database (in place)" } }
                        label for="pitr-name" { "named" }
                        input #pitr-name name="name" placeholder={(db.name) "-at-time"} size="14";
                        button type="submit" { "Restore" }
                    }
                }
                _ => { p.muted { "Nothing is restorable yet: archiving is " (label(&w.archiving)) ", the first base backup may still be running." } }
            }
        }
    }
}

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

    #[test]
    fn ticks_stay_on_the_bar() {
        let from = parse_time("2026-12-03T10:00:00").unwrap();
        let to = parse_time("2026-12-03T12:00:00").unwrap();
        let svg = timeline(from, to, &[(parse_time("2026-12-03T11:00:00").unwrap(), "full".into())]).into_string();
        assert!(svg.contains("x1=\"500.0\""), "{svg}");
    }
}
