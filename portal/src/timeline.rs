//! The recovery window drawn as a timeline (base backups as ticks), and the database page's
//! point-in-time section with its restore-to-a-time form (handled in `recovery`).

use chrono::{DateTime, Utc};
use dbaas_client::{ArchivingState, Database, DatabaseRecoveryWindow};
use maud::{html, Markup};

use super::layout::{csrf, label, when};
use super::session::Session;

/// An inline SVG bar from `from` to `to` with a tick per `(time, title)`.
pub(super) fn timeline(from: DateTime<Utc>, to: DateTime<Utc>, ticks: &[(DateTime<Utc>, String)]) -> Markup {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_stay_on_the_bar() {
        let from = at("2026-12-03T10:00:00Z");
        let to = at("2026-12-03T12:00:00Z");
        let svg = timeline(from, to, &[(at("2026-12-03T11:00:00Z"), "full".into())]).into_string();
        assert!(svg.contains("x1=\"500.0\""), "{svg}");
    }

    fn at(t: &str) -> DateTime<Utc> {
        t.parse().unwrap()
    }
}
