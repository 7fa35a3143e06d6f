//! The databases list, and the create form with the API's own validation messages.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dbaas_client::{CreateDatabase, Database, DatabaseAccepted, FieldError, Instance, List, Placement};
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::api::query_value;
use super::layout::{self, badge, csrf, label, maybe_when, page};
use super::session::{Posted, Session};
use super::{sizes, Portal};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_typed_in_one_field() {
        let l = parse_labels("tier=gold, region = eu\nzone=b").unwrap_or_default();
        assert_eq!(l.len(), 3);
        assert_eq!(l.get("tier").map(String::as_str), Some("gold"));
        assert_eq!(l.get("region").map(String::as_str), Some("eu"));
        assert!(parse_labels("tier").is_err());
        assert!(parse_labels("=gold").is_err());
        assert_eq!(parse_labels("").map(|l| l.len()), Ok(0));
    }
}

#[derive(Deserialize, Default)]
pub struct ListFilter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    cursor: String,
}

const STATUSES: [&str; 7] = ["provisioning", "ready", "updating", "failed", "deleting", "retained", "deleted"];
const ENVIRONMENTS: [&str; 3] = ["sandbox", "preprod", "prod"];

pub async fn list(State(_): State<Portal>, session: Session, Query(f): Query<ListFilter>) -> Response {
    let mut path = "/v1/databases?limit=1000".to_string();
    if STATUSES.contains(&f.status.as_str()) {
        path += &format!("&status={}", f.status);
    }
    if ENVIRONMENTS.contains(&f.environment.as_str()) {
        path += &format!("&environment={}", f.environment);
    }
    if !f.cursor.is_empty() {
        path += &format!("&cursor={}", query_value(&f.cursor));
    }
    if !f.q.trim().is_empty() {
        path += &format!("&search={}", query_value(f.q.trim()));
    }
    let list: List<Database> = match session.api.get(&path).await {
        Ok(l) => l,
        Err(e) => return layout::error_page(e.status(), &e.message()),
    };
    // Sizes from the last metrics collection, one call for the whole page.
    let sizes = session.api.get_text("/v1/prometheus/metrics").await.map(|t| sizes::parse(&t)).unwrap_or_default();
    let needle = f.q.trim().to_lowercase();
    let shown: Vec<&Database> = list
        .items
        .iter()
        .filter(|d| {
            needle.is_empty() || d.name.contains(&needle) || d.tenant.contains(&needle) || d.instance.contains(&needle)
        })
        .collect();
    let body = html! {
        p { a.button href="/portal/databases/new" { "Create a database" } }
        form.filters method="get" action="/portal/databases" role="search" {
            div.field {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(f.q) placeholder="part of the name";
            }
            div.field {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "any" }
                    @for s in STATUSES { option value=(s) selected[f.status == s] { (s) } }
                }
            }
            div.field {
                label for="environment" { "Environment" }
                select #environment name="environment" {
                    option value="" { "any" }
                    @for e in ENVIRONMENTS { option value=(e) selected[f.environment == e] { (e) } }
                }
            }
            button type="submit" { "Filter" }
        }
        @if shown.is_empty() {
            p.muted { "No databases match." }
        } @else {
            div.table-wrap {
                table #databases {
                    caption.visually-hidden { "Databases" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Tenant" } th scope="col" { "Status" }
                        th scope="col" { "Environment" } th scope="col" { "Instance" } th scope="col" { "Size" }
                        th scope="col" { "Last backup" }
                    } }
                    tbody {
                        @for d in &shown {
                            tr {
                                td { a href={"/portal/databases/" (d.id)} { (d.name) } }
                                td { (d.tenant) }
                                td { (badge(&label(&d.status))) }
                                td { (label(&d.environment)) }
                                td { (d.instance) }
                                td { (layout::bytes(sizes.get(&(d.tenant.clone(), d.name.clone())).copied())) }
                                td { (maybe_when(d.backups.last_backup_at.as_ref())) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &list.next_cursor {
            p { a href={"/portal/databases?cursor=" (query_value(next)) "&status=" (query_value(&f.status)) "&environment=" (query_value(&f.environment)) "&q=" (query_value(&f.q))} { "More databases" } }
        }
    };
    page(&session, "Databases", body).into_response()
}

/// What the create form posts (strings, as typed; the API validates them).
#[derive(Deserialize, Default, Clone)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    instance: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    labels: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    extensions: String,
}

pub async fn new_form(State(_): State<Portal>, session: Session) -> Response {
    let instances = instance_names(&session).await;
    page(&session, "Create a database", create_form(&session, &CreateForm::default(), &[], None, &instances))
        .into_response()
}

async fn instance_names(session: &Session) -> Vec<String> {
    match session.api.get::<List<Instance>>("/v1/instances?limit=1000").await {
        Ok(l) => l.items.into_iter().map(|i| i.name).collect(),
        Err(_) => Vec::new(),
    }
}

/// A string from a form as the API's enum (`prod`, `protected` …); empty is none.
fn parse_enum<T: DeserializeOwned>(field: &str, value: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    match serde_json::from_value(serde_json::Value::String(v.to_string())) {
        Ok(t) => Some(t),
        Err(_) => {
            errors.push(FieldError {
                field: field.into(),
                code: "invalid".into(),
                message: format!("{v:?} is not a valid choice"),
            });
            None
        }
    }
}

pub async fn create(State(_): State<Portal>, Posted { session, form }: Posted<CreateForm>) -> Response {
    let mut errors = Vec::new();
    let environment = parse_enum("environment", &form.environment, &mut errors);
    let mode = parse_enum("mode", &form.mode, &mut errors);
    let labels = match parse_labels(&form.labels) {
        Ok(l) => l,
        Err(m) => {
            errors.push(FieldError { field: "labels".into(), code: "invalid".into(), message: m });
            Default::default()
        }
    };
    if !labels.is_empty() && !form.instance.trim().is_empty() {
        errors.push(FieldError {
            field: "labels".into(),
            code: "conflict".into(),
            message: "labels choose an instance by placement: leave the instance empty".into(),
        });
    }
    let instances = instance_names(&session).await;
    if !errors.is_empty() {
        let body = create_form(&session, &form, &errors, None, &instances);
        return (StatusCode::UNPROCESSABLE_ENTITY, page(&session, "Create a database", body)).into_response();
    }
    let instance = Some(form.instance.trim().to_string()).filter(|s| !s.is_empty());
    let req = CreateDatabase {
        name: form.name.trim().to_string(),
        tenant: Some(form.tenant.trim().to_string()).filter(|s| !s.is_empty()),
        placement: match (&instance, environment) {
            (None, Some(env)) => Some(Placement { environment: Some(env), labels }),
            _ => None,
        },
        instance,
        mode,
        extensions: split_list(&form.extensions),
        ..Default::default()
    };
    match session.api.post::<_, DatabaseAccepted>("/v1/databases", &req).await {
        Ok(acc) => match acc.operation {
            Some(op) => layout::see_other(&format!("/portal/operations/{}", op.id)),
            None => layout::see_other(&format!("/portal/databases/{}", acc.database.id)),
        },
        Err(e) => {
            // The API's field errors, moved onto the form's fields.
            let errors: Vec<FieldError> = e
                .field_errors()
                .iter()
                .map(|fe| FieldError { field: form_field(&fe.field).into(), ..fe.clone() })
                .collect();
            let general = if errors.is_empty() { Some(e.message()) } else { None };
            let body = create_form(&session, &form, &errors, general.as_deref(), &instances);
            (e.status(), page(&session, "Create a database", body)).into_response()
        }
    }
}

/// `tier=gold, region=eu` (commas or new lines between pairs) as placement labels.
fn parse_labels(s: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
            _ => Err(format!("{pair:?} is not key=value")),
        })
        .collect()
}

/// A list typed into one field: separated by commas, spaces or new lines.
pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Which form field an API field error belongs to.
fn form_field(api_field: &str) -> &'static str {
    match api_field {
        "name" => "name",
        "tenant" => "tenant",
        "mode" => "mode",
        f if f.starts_with("extensions") => "extensions",
        "placement.environment" => "environment",
        f if f.starts_with("placement.labels") => "labels",
        _ => "instance",
    }
}

fn field_error<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a FieldError> {
    errors.iter().find(|e| e.field == field)
}

/// A labelled input with its error (linked by aria-describedby) under it.
fn input(id: &str, text: &str, value: &str, errors: &[FieldError], hint: &str, list: Option<&str>) -> Markup {
    let err = field_error(errors, id);
    let described = match (err.is_some(), hint.is_empty()) {
        (true, _) => Some(format!("{id}-error")),
        (false, false) => Some(format!("{id}-hint")),
        _ => None,
    };
    html! {
        div.field {
            label for=(id) { (text) }
            input id=(id) name=(id) type="text" value=(value) list=[list]
                aria-invalid=[err.map(|_| "true")] aria-describedby=[described];
            @if let Some(e) = err { p.error id={(id) "-error"} role="alert" { (e.message) } }
            @else if !hint.is_empty() { p.hint id={(id) "-hint"} { (hint) } }
        }
    }
}

fn create_form(
    session: &Session,
    f: &CreateForm,
    errors: &[FieldError],
    general: Option<&str>,
    instances: &[String],
) -> Markup {
    html! {
        @if let Some(g) = general { (layout::notice("error", g)) }
        @if !errors.is_empty() { (layout::notice("error", "The database was not created: correct the fields marked below.")) }
        form.card method="post" action="/portal/databases" novalidate {
            (csrf(session))
            (input("name", "Name", &f.name, errors, "Lower-case letters, digits and single '-' inside, starting with a letter.", None))
            @if session.is_admin() {
                (input("tenant", "Tenant", &f.tenant, errors, "Admins create databases for a tenant.", None))
            }
            (input("instance", "Instance", &f.instance, errors, "An instance's name, or leave empty and choose an environment for automatic placement.", Some("instance-names")))
            datalist #instance-names { @for i in instances { option value=(i) {} } }
            div.field {
                label for="environment" { "Environment (placement)" }
                select #environment name="environment" aria-invalid=[field_error(errors, "environment").map(|_| "true")] {
                    option value="" { "—" }
                    @for e in ENVIRONMENTS { option value=(e) selected[f.environment == e] { (e) } }
                }
                @if let Some(e) = field_error(errors, "environment") { p.error role="alert" { (e.message) } }
            }
            (input("labels", "Labels (placement)", &f.labels, errors, "Optional, with an environment: key=value pairs the instance must carry, e.g. tier=gold.", None))
            div.field {
                label for="mode" { "Mode" }
                select #mode name="mode" {
                    option value="standard" selected[f.mode != "protected"] { "standard" }
                    option value="protected" selected[f.mode == "protected"] { "protected (deleting keeps it, retained)" }
                }
                @if let Some(e) = field_error(errors, "mode") { p.error role="alert" { (e.message) } }
            }
            (input("extensions", "Extensions", &f.extensions, errors, "Comma-separated, from the instance's allowed list (e.g. pg_trgm, citext).", None))
            button type="submit" { "Create" }
        }
    }
}
