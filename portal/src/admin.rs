//! Platform admins: instances (capacity and health), hosts, tenants and quotas, tokens, and
//! the audit log. Tenants are refused by the API itself (403), shown as such.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dbaas_client::{AuditEntry, Host, Instance, List, Tenant, Token};
use maud::html;
use serde::Deserialize;

use super::api::query_value;
use super::layout::{self, badge, label, maybe_when, page, when};
use super::session::Session;
use super::Portal;

fn admins_only(session: &Session) -> Option<Response> {
    (!session.is_admin()).then(|| layout::error_page(StatusCode::FORBIDDEN, "this page is for platform admins"))
}

pub async fn overview(State(_): State<Portal>, session: Session) -> Response {
    if let Some(r) = admins_only(&session) {
        return r;
    }
    let api = &session.api;
    let (instances, hosts, tenants, tokens) = tokio::join!(
        api.get::<List<Instance>>("/v1/instances?limit=1000"),
        api.get::<List<Host>>("/v1/hosts?limit=1000"),
        api.get::<List<Tenant>>("/v1/tenants?limit=1000"),
        api.get::<List<Token>>("/v1/tokens?limit=200"),
    );
    let (instances, hosts, tenants, tokens) = match (instances, hosts, tenants, tokens) {
        (Ok(i), Ok(h), Ok(t), Ok(k)) => (i.items, h.items, t.items, k.items),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return layout::error_page(e.status(), &e.message())
        }
    };
    let body = html! {
        section aria-labelledby="instances" {
            h2 #instances { "Instances" }
            div.table-wrap { table #instance-table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Environment" } th scope="col" { "Status" } th scope="col" { "Health" } th scope="col" { "Databases" } th scope="col" { "Version" } } }
                tbody { @for i in &instances {
                    @let pct = if i.max_databases > 0 { (i.database_count * 100 / i64::from(i.max_databases)).min(100) } else { 0 };
                    tr {
                        td { @if i.kind == dbaas_client::InstanceKind::Managed { a href={"/portal/admin/instances/" (i.name)} { (i.name) } } @else { (i.name) } @if i.protected { " " span.muted { "(protected)" } } }
                        td { (label(&i.environment)) }
                        td { (badge(&label(&i.status))) }
                        td { @match i.managed.as_ref().and_then(|m| m.health.as_ref()) {
                            Some(h) => { (badge(&label(&h.status))) " " (when(&h.checked_at)) @if let Some(m) = &h.message { p.hint { (m) } } },
                            None => { span.muted { "not managed" } }
                        } }
                        td {
                            meter min="0" max=(i.max_databases) value=(i.database_count) high=(i64::from(i.max_databases) * 9 / 10)
                                aria-label={"Capacity of " (i.name)} {}
                            " " (i.database_count) " / " (i.max_databases) " (" (pct) "%)"
                        }
                        td { (i.server_version) }
                    }
                } }
            } }
        }
        section aria-labelledby="hosts" {
            h2 #hosts { "Hosts" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Address" } th scope="col" { "Ports" } th scope="col" { "PostgreSQL" } } }
                tbody { @for h in &hosts { tr {
                    td { (h.name) } td { (label(&h.kind)) } td { (h.address.as_deref().unwrap_or("local")) }
                    td { (h.port_range[0]) "–" (h.port_range[1]) }
                    td { (h.pg_versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>().join(", ")) }
                } } }
            } }
        }
        section aria-labelledby="tenants" {
            h2 #tenants { "Tenants and quotas" }
            div.table-wrap { table #tenant-table {
                thead { tr { th scope="col" { "Tenant" } th scope="col" { "Databases" } th scope="col" { "Created" } } }
                tbody { @for t in &tenants { tr {
                    td { (t.name) }
                    td { meter min="0" max=(t.max_databases) value=(t.database_count) aria-label={"Quota of " (t.name)} {} " " (t.database_count) " / " (t.max_databases) }
                    td { (when(&t.created_at)) }
                } } }
            } }
        }
        section aria-labelledby="tokens" {
            h2 #tokens { "Tokens" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Prefix" } th scope="col" { "Scope" } th scope="col" { "Description" } th scope="col" { "Expires" } th scope="col" { "Revoked" } } }
                tbody { @for k in &tokens { tr {
                    td { code { (k.prefix) "…" } }
                    td { @if k.admin { "admin" } @else { (k.tenant.as_deref().unwrap_or("?")) } }
                    td { (k.description) }
                    td { (maybe_when(k.expires_at.as_ref())) }
                    td { (maybe_when(k.revoked_at.as_ref())) }
                } } }
            } }
        }
    };
    page(&session, "Admin", body).into_response()
}

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    cursor: String,
}

pub async fn audit(State(_): State<Portal>, session: Session, Query(f): Query<AuditFilter>) -> Response {
    if let Some(r) = admins_only(&session) {
        return r;
    }
    let mut path = "/v1/audit?limit=100".to_string();
    for (k, v) in [("tenant", &f.tenant), ("action", &f.action), ("cursor", &f.cursor)] {
        if !v.trim().is_empty() {
            path += &format!("&{k}={}", query_value(v.trim()));
        }
    }
    let list: List<AuditEntry> = match session.api.get(&path).await {
        Ok(l) => l,
        Err(e) => return layout::error_page(e.status(), &e.message()),
    };
    let body = html! {
        form.filters method="get" action="/portal/admin/audit" role="search" {
            div.field { label for="tenant" { "Tenant" } input #tenant name="tenant" value=(f.tenant); }
            div.field { label for="action" { "Action starts with" } input #action name="action" value=(f.action) placeholder="POST /v1/databases"; }
            button type="submit" { "Filter" }
        }
        div.table-wrap { table #audit {
            thead { tr { th scope="col" { "When" } th scope="col" { "Actor" } th scope="col" { "Tenant" } th scope="col" { "Action" } th scope="col" { "Path" } th scope="col" { "Status" } } }
            tbody { @for a in &list.items { tr {
                td { (when(&a.at)) } td { code { (a.actor) } } td { (a.tenant.as_deref().unwrap_or("—")) }
                td { (a.action) } td { code { (a.target.as_deref().unwrap_or("")) } } td { (a.status_code) }
            } } }
        } }
        @if let Some(next) = &list.next_cursor {
            p { a href={"/portal/admin/audit?cursor=" (query_value(next)) "&tenant=" (query_value(&f.tenant)) "&action=" (query_value(&f.action))} { "Older entries" } }
        }
    };
    page(&session, "Audit log", body).into_response()
}
