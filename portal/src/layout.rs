//! The page shell, shared fragments, static assets and the portal's response headers.
//!
//! Pages are rendered on the server (maud escapes every interpolated value); a small script
//! adds copy buttons, countdowns and live operation logs, and every page works without it.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use serde::Serialize;

use crate::signed_in::Session;

const CSS: &str = include_str!("assets/portal.css");
const JS: &str = include_str!("assets/portal.js");

/// A whole page for a signed-in user.
pub fn page(session: &Session, title: &str, body: Markup) -> Html<String> {
    let nav = html! {
        nav aria-label="Main" {
            a href="/portal/databases" { "Databases" }
            a href="/portal/operations" { "Operations" }
            @if session.is_admin() {
                a href="/portal/admin" { "Admin" }
                a href="/portal/admin/audit" { "Audit log" }
            }
        }
        div.who {
            span { (session.who()) }
            form method="post" action="/portal/logout" {
                (csrf(session))
                button.link type="submit" { "Sign out" }
            }
        }
    };
    shell(title, Some(nav), body)
}

fn shell(title: &str, nav: Option<Markup>, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · dbaas" }
                    link rel="stylesheet" href="/portal/static/portal.css";
                    script src="/portal/static/portal.js" defer {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        a.brand href="/portal/databases" { "dbaas" }
                        @if let Some(nav) = nav { (nav) }
                    }
                    main #main { h1 { (title) } (body) }
                }
            }
        }
        .into_string(),
    )
}

/// The hidden CSRF field every form of a session carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="_csrf" value=(session.csrf); }
}

pub fn login(csrf: &str, error: Option<&str>, next: Option<&str>) -> Html<String> {
    shell(
        "Sign in",
        None,
        html! {
            form.card method="post" action="/portal/login" {
                input type="hidden" name="_csrf" value=(csrf);
                @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                div.field {
                    label for="token" { "API token" }
                    input #token type="password" name="token" autocomplete="off" required
                        aria-describedby=[error.map(|_| "token-error")] aria-invalid=[error.map(|_| "true")];
                    @if let Some(e) = error { p.error #token-error role="alert" { (e) } }
                    p.hint { "A tenant token shows that tenant's databases; an admin token shows all." }
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// An error page (no session needed).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        shell(
            title,
            None,
            html! { p.error role="alert" { (message) } p { a href="/portal/databases" { "Back to the portal" } } },
        ),
    )
        .into_response()
}

/// A notice above a page's content.
pub fn notice(kind: &str, message: &str) -> Markup {
    html! { div class={"notice " (kind)} role=(if kind == "error" { "alert" } else { "status" }) { (message) } }
}

/// 303 See Other: after a form, the browser loads the next page with GET.
pub fn see_other(path: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(path) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// An enum's wire name (`in_place`, `running` …), for display.
pub fn label<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

pub fn when(at: &DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

pub fn maybe_when(at: Option<&DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => when(at),
        None => html! { span.muted { "never" } },
    }
}

pub fn bytes(n: Option<i64>) -> String {
    let Some(n) = n else { return "—".into() };
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// A status as a badge whose text, not only its colour, tells the state.
pub fn badge(status: &str) -> Markup {
    let tone = match status {
        "ready" | "succeeded" | "active" | "healthy" | "passed" => "good",
        "failed" | "error" | "verification_failed" | "down" => "bad",
        "queued" | "running" | "provisioning" | "deleting" | "restoring" => "busy",
        _ => "neutral",
    };
    html! { span class={"badge " (tone)} { (status) } }
}

/// A value with a button that copies it (the button appears only with the script).
pub fn copyable(id: &str, value: &str) -> Markup {
    html! {
        span.copyable {
            code #(id) { (value) }
            button.copy type="button" data-copy=(id) aria-label={"Copy " (id)} hidden { "Copy" }
        }
    }
}

/// Headers of every portal response: no caching (pages may hold secrets), no framing, a
/// strict content security policy (no inline script), no referrer to other sites.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form
    // posts, and the origin check needs the real one.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

pub async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}
