//! One database: summary, connection panel per role, credentials and leases, maintenance,
//! backups and restores, metrics, drift, delete, and its Terraform. Its forms are handled in
//! `database_actions`; actions that start an operation go to its live page.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dbaas_client::{
    Backup, Credential, CredentialKind, Database, DatabaseMetrics, DatabaseMode, DatabaseRecoveryWindow, List,
    Operation, Schedule,
};
use maud::{html, Markup};
use uuid::Uuid;

use super::api::ApiFailure;
use super::layout::{self, badge, bytes, copyable, csrf, label, maybe_when, notice, page, when};
use super::session::Session;
use super::{terraform, Portal};

/// Something to show once, on the page answering a form: never stored, never in a GET.
pub(super) enum Once {
    None,
    Password { access: String, username: String, password: String },
    Lease(Box<Credential>),
    Error(String),
}

pub async fn show(State(_): State<Portal>, session: Session, Path(id): Path<Uuid>) -> Response {
    render(&session, id, Once::None, StatusCode::OK).await
}

pub(super) async fn render(session: &Session, id: Uuid, once: Once, status: StatusCode) -> Response {
    let api = &session.api;
    let db: Database = match api.get(&format!("/v1/databases/{id}")).await {
        Ok(d) => d,
        Err(e) => return layout::error_page(e.status(), &e.message()),
    };
    // The sections' reads are independent: made at once. A section that cannot be read is
    // shown empty and named in a notice, not silently blank.
    let paths = [
        format!("/v1/databases/{id}/credentials"),
        format!("/v1/databases/{id}/backups?limit=20"),
        format!("/v1/databases/{id}/schedules"),
        format!("/v1/databases/{id}/metrics"),
        format!("/v1/operations?target_id={id}&limit=10"),
        format!("/v1/databases/{id}/recovery"),
    ];
    let (creds, backups, schedules, metrics, ops, window) = tokio::join!(
        api.get::<List<Credential>>(&paths[0]),
        api.get::<List<Backup>>(&paths[1]),
        api.get::<List<Schedule>>(&paths[2]),
        api.get::<DatabaseMetrics>(&paths[3]),
        api.get::<List<Operation>>(&paths[4]),
        api.get::<DatabaseRecoveryWindow>(&paths[5]),
    );
    fn items<T>(unread: &mut Vec<String>, what: &str, r: Result<List<T>, ApiFailure>) -> Vec<T> {
        r.map(|l| l.items).unwrap_or_else(|e| {
            unread.push(format!("{what} ({})", e.message()));
            Vec::new()
        })
    }
    let mut unread = Vec::new();
    let creds = items(&mut unread, "credentials", creds);
    let backups = items(&mut unread, "backups", backups);
    let schedules = items(&mut unread, "schedules", schedules);
    let ops = items(&mut unread, "operations", ops);
    let metrics = metrics.ok();
    // A window that cannot be read (the host unreachable) leaves the section out, said so.
    let window = window.map_err(|e| unread.push(format!("recovery window ({})", e.message()))).ok();
    let body = html! {
        @if !unread.is_empty() { (notice("error", &format!("Could not read: {}.", unread.join("; ")))) }
        @match &once {
            Once::Error(m) => (notice("error", m)),
            Once::Password { access, username, password } => {
                section.card.secret aria-labelledby="revealed" {
                    h2 #revealed { "Password of " (username) " (" (access) ")" }
                    p { "Shown on this page only; it is not kept in the page you reload." }
                    (copyable("revealed-password", password))
                }
            }
            Once::Lease(c) => {
                section.card.secret aria-labelledby="lease-created" {
                    h2 #lease-created { "Lease created: " (c.username) }
                    p { "Its password is shown this once. It expires " (maybe_when(c.expires_at.as_ref())) "." }
                    (copyable("lease-password", &c.password))
                }
            }
            Once::None => {}
        }
        (summary(&db))
        (connection(session, &db, &creds))
        (leases(session, &db, &creds))
        (maintenance(session, &db, &schedules))
        (backups_section(session, &db, &backups))
        (super::timeline::database_section(session, &db, window.as_ref()))
        (metrics_section(metrics.as_ref()))
        (drift(&db))
        (operations(&ops))
        (terraform_section(&db))
        (delete_section(session, &db))
    };
    (status, page(session, &format!("Database {}", db.name), body)).into_response()
}

fn summary(db: &Database) -> Markup {
    html! {
        section aria-labelledby="summary" {
            h2 #summary { "Summary" }
            dl.grid {
                dt { "Status" } dd #status { (badge(&label(&db.status))) }
                dt { "Tenant" } dd { (db.tenant) }
                dt { "Environment" } dd { (label(&db.environment)) }
                dt { "Instance" } dd { (db.instance) }
                dt { "Mode" } dd { (label(&db.mode)) }
                dt { "Extensions" } dd { @if db.extensions.is_empty() { span.muted { "none" } } @else { (db.extensions.join(", ")) } }
                dt { "Connection limit" } dd { (db.connection_limit) }
                dt { "Pool mode" } dd { (db.pool_mode.as_str()) }
                dt { "Created" } dd { (when(&db.created_at)) }
            }
        }
    }
}

/// `postgresql://user@host:port/db?…` — the credential's URI without its password.
fn uri_without_password(db: &Database, c: &Credential) -> String {
    let query = c.uri.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("postgresql://{}@{}:{}/{}{}", c.username, db.host, db.port, db.physical_name, query)
}

fn static_creds(creds: &[Credential]) -> impl Iterator<Item = &Credential> {
    creds.iter().filter(|c| c.kind == CredentialKind::Static)
}

fn connection(session: &Session, db: &Database, creds: &[Credential]) -> Markup {
    html! {
        section aria-labelledby="connect" {
            h2 #connect { "Connect" }
            p { "Host " code { (db.host) } ", port " code { (db.port) } ", database " code { (db.physical_name) } "." }
            div.table-wrap { table #credentials.stack {
                thead { tr { th scope="col" { "Role" } th scope="col" { "User" } th scope="col" { "URI and psql" } th scope="col" { "Password" } } }
                tbody {
                    @for c in static_creds(creds) {
                        @let access = label(&c.access);
                        @let uri = uri_without_password(db, c);
                        tr data-access=(access) {
                            th scope="row" { (access) }
                            td data-label="User" { (c.username) }
                            td data-label="URI and psql" {
                                (copyable(&format!("uri-{access}"), &uri))
                                br;
                                (copyable(&format!("psql-{access}"), &format!("psql \"{uri}\"")))
                            }
                            td data-label="Password" {
                                form.inline method="post" action={"/portal/databases/" (db.id) "/reveal"} {
                                    (csrf(session))
                                    input type="hidden" name="access" value=(access);
                                    button type="submit" { "Reveal" }
                                }
                                form.inline method="post" action={"/portal/databases/" (db.id) "/rotate"} {
                                    (csrf(session))
                                    input type="hidden" name="access" value=(access);
                                    button.secondary type="submit" { "Rotate" }
                                }
                                @if let Some(at) = &c.rotated_at { p.hint { "rotated " (when(at)) } }
                            }
                        }
                    }
                }
            } }
        }
    }
}

fn leases(session: &Session, db: &Database, creds: &[Credential]) -> Markup {
    let leases: Vec<&Credential> = creds.iter().filter(|c| c.kind == CredentialKind::Lease).collect();
    html! {
        section aria-labelledby="leases" {
            h2 #leases { "Leases" }
            p.hint { "Temporary logins that expire by themselves (a revoke ends them at once)." }
            @if leases.is_empty() { p.muted { "No leases." } } @else {
                div.table-wrap { table #lease-table {
                    thead { tr { th scope="col" { "User" } th scope="col" { "Access" } th scope="col" { "Status" } th scope="col" { "Expires" } th scope="col" { "" } } }
                    tbody { @for c in &leases {
                        tr data-lease=(c.id) {
                            td { (c.username) }
                            td { (label(&c.access)) }
                            td { (badge(&label(&c.status))) }
                            td { @if let Some(at) = &c.expires_at { (when(at)) " " span.countdown data-expires=(at.to_rfc3339()) {} } }
                            td { @if label(&c.status) == "active" {
                                form.inline method="post" action={"/portal/databases/" (db.id) "/leases/" (c.id) "/revoke"} {
                                    (csrf(session))
                                    button.secondary type="submit" { "Revoke" }
                                }
                            } }
                        }
                    } }
                } }
            }
            form.inline-form method="post" action={"/portal/databases/" (db.id) "/leases"} {
                (csrf(session))
                div.field { label for="lease-access" { "Access" }
                    select #lease-access name="access" { option value="read" { "read" } option value="write" { "write" } option value="admin" { "admin" } } }
                div.field { label for="lease-ttl" { "Valid for" } input #lease-ttl name="ttl" value="1h" aria-describedby="lease-ttl-hint"; p.hint #lease-ttl-hint { "e.g. 15m, 1h, 7d" } }
                button type="submit" { "Create lease" }
            }
        }
    }
}

fn maintenance(session: &Session, db: &Database, schedules: &[Schedule]) -> Markup {
    html! {
        section aria-labelledby="maintenance" {
            h2 #maintenance { "Maintenance" }
            form.inline-form method="post" action={"/portal/databases/" (db.id) "/maintenance"} {
                (csrf(session))
                div.field { label for="maintenance-kind" { "Run now" }
                    select #maintenance-kind name="kind" {
                        option value="vacuum" { "VACUUM (ANALYZE)" } option value="analyze" { "ANALYZE" }
                        option value="reindex" { "REINDEX CONCURRENTLY" } option value="repack" { "pg_repack" }
                    } }
                div.field { label for="maintenance-tables" { "Tables (optional)" } input #maintenance-tables name="tables" placeholder="public.orders, public.items"; }
                button type="submit" { "Run" }
            }
            h3 { "Schedules" }
            @if schedules.is_empty() { p.muted { "No schedules." } } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Kind" } th scope="col" { "Cron" } th scope="col" { "Next run" } th scope="col" { "Last run" } th scope="col" { "Set by" } } }
                    tbody { @for s in schedules { tr {
                        td { (label(&s.kind)) @if !s.enabled { " (disabled)" } }
                        td { code { (s.cron) } }
                        td { (when(&s.next_run_at)) }
                        td { (maybe_when(s.last_run_at.as_ref())) }
                        td { (s.origin) }
                    } } }
                } }
            }
        }
    }
}

fn backups_section(session: &Session, db: &Database, backups: &[Backup]) -> Markup {
    html! {
        section aria-labelledby="backups" {
            h2 #backups { "Backups" }
            @if db.backups.verification_failed { (notice("error", "The latest restore drill failed: see the backups below.")) }
            form.inline method="post" action={"/portal/databases/" (db.id) "/backups"} {
                (csrf(session))
                button type="submit" { "Take a backup" }
            }
            @if let Some(until) = db.backups.previous_retained_until.filter(|t| *t > chrono::Utc::now()) {
                div.notice #undo-restore {
                    p { "The database from before the last in-place restore is kept until " (when(&until)) "." }
                    form.inline method="post" action={"/portal/databases/" (db.id) "/restore/undo"} {
                        (csrf(session))
                        button.secondary type="submit" { "Undo the restore" }
                        span.hint { " swaps it back; the restored one is kept in its stead until the same time" }
                    }
                }
            }
            @if backups.is_empty() { p.muted { "No backups yet." } } @else {
                div.table-wrap { table #backup-table.stack {
                    thead { tr { th scope="col" { "Taken" } th scope="col" { "Status" } th scope="col" { "Size" } th scope="col" { "Reason" } th scope="col" { "Drill" } th scope="col" { "Restore" } } }
                    tbody { @for b in backups { tr data-backup=(b.id) {
                        td data-label="Taken" { (when(&b.created_at)) }
                        td data-label="Status" { (badge(&label(&b.status))) @if let Some(e) = &b.error { p.error { (e) } } }
                        td data-label="Size" { (bytes(b.size_bytes)) }
                        td data-label="Reason" { (label(&b.reason)) }
                        td data-label="Drill" {
                            @match &b.verify_status { Some(v) => { (badge(&label(v))) " " (maybe_when(b.verified_at.as_ref())) }, None => { span.muted { "not drilled" } } }
                            @if label(&b.status) == "succeeded" {
                                form.inline method="post" action={"/portal/backups/" (b.id) "/verify"} {
                                    (csrf(session)) input type="hidden" name="database" value=(db.id);
                                    button.secondary type="submit" { "Drill" }
                                }
                            }
                        }
                        td data-label="Restore" { @if label(&b.status) == "succeeded" {
                            form.restore method="post" action={"/portal/databases/" (db.id) "/restore"} {
                                (csrf(session))
                                input type="hidden" name="backup" value=(b.id);
                                label for={"target-" (b.id)} { "As" }
                                select id={"target-" (b.id)} name="target" { option value="new" { "a new database" } option value="in_place" { "this database (in place)" } }
                                label for={"name-" (b.id)} { "named" }
                                input id={"name-" (b.id)} name="name" placeholder={(db.name) "-restored"} size="14";
                                button type="submit" { "Restore" }
                            }
                        } }
                    } } }
                } }
            }
        }
    }
}

fn metrics_section(m: Option<&DatabaseMetrics>) -> Markup {
    html! {
        section aria-labelledby="metrics" {
            h2 #metrics { "Metrics" }
            @match m {
                Some(m) if m.collected_at.is_some() => {
                    dl.grid {
                        dt { "Size" } dd { (bytes(m.size_bytes)) }
                        dt { "Connections" } dd { (m.connections.map(|c| c.to_string()).unwrap_or("—".into())) }
                        dt { "Transactions/s" } dd { (m.transactions_per_second.map(|t| format!("{t:.1}")).unwrap_or("—".into())) }
                        dt { "Dead rows" } dd { (m.dead_tuples.map(|t| t.to_string()).unwrap_or("—".into())) }
                        dt { "Deadlocks" } dd { (m.deadlocks.map(|t| t.to_string()).unwrap_or("—".into())) }
                        dt { "Collected" } dd { (maybe_when(m.collected_at.as_ref())) }
                    }
                }
                _ => { p.muted { "Not collected yet." } }
            }
        }
    }
}

fn drift(db: &Database) -> Markup {
    html! {
        section aria-labelledby="drift" {
            h2 #drift { "Drift" }
            @match &db.drift {
                None => { p.muted { "Not checked yet." } }
                Some(d) => {
                    @if d.database_missing { (notice("error", "The database is missing on its instance.")) }
                    @if !d.missing_roles.is_empty() { (notice("error", &format!("Missing roles: {}", d.missing_roles.join(", ")))) }
                    @if let Some(e) = &d.error { (notice("error", e)) }
                    @if d.differences.is_empty() && !d.database_missing && d.missing_roles.is_empty() && d.error.is_none() {
                        p { "No drift: the instance matches the record." }
                    } @else { ul { @for x in &d.differences { li { (x) } } } }
                    p.hint { "Checked " (maybe_when(d.checked_at.as_ref())) "." }
                }
            }
        }
    }
}

fn operations(ops: &[Operation]) -> Markup {
    html! {
        section aria-labelledby="recent-ops" {
            h2 #recent-ops { "Recent operations" }
            @if ops.is_empty() { p.muted { "None." } } @else { ul { @for o in ops {
                li { a href={"/portal/operations/" (o.id)} { (label(&o.kind)) } " " (badge(&label(&o.status))) " " (when(&o.created_at)) }
            } } }
        }
    }
}

fn terraform_section(db: &Database) -> Markup {
    html! {
        section aria-labelledby="terraform" {
            h2 #terraform { "As Terraform" }
            p.hint { "This database's current configuration as a resource (import it with the id shown)." }
            (copyable("terraform-snippet", &terraform::snippet(db)))
        }
    }
}

fn delete_section(session: &Session, db: &Database) -> Markup {
    html! {
        section.danger aria-labelledby="delete" {
            h2 #delete { "Delete" }
            @if db.mode == DatabaseMode::Protected {
                p { "This database is " strong { "protected" } ": deleting it does not drop it. Its data, roles and credentials are kept and it becomes "
                    strong { "retained" } ", no longer managed. To drop it, change its mode to standard first (or an admin deletes with force)." }
            } @else {
                p { "Deleting drops the database and its roles (after a final backup where the environment's policy asks for one). Sessions get a grace period, then are ended." }
            }
            form method="post" action={"/portal/databases/" (db.id) "/delete"} {
                (csrf(session))
                div.field { label for="confirm" { "Type the database's name to confirm" } input #confirm name="confirm" autocomplete="off"; }
                button.danger type="submit" { "Delete " (db.name) }
            }
        }
    }
}
