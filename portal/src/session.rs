//! Signing in and out, the session cookie, and CSRF protection.
//!
//! The cookie holds 32 random bytes. Served over TLS (or behind a TLS-terminating balancer,
//! `DBAAS_SECURE_COOKIES`) it is `__Host-dbaas_portal` (Secure, Path=/, no Domain): browsers
//! refuse a cookie of that name set by any other origin, so a sibling domain cannot plant one
//! (session fixation). Over plain HTTP, which the service only serves for `dev` on this
//! machine, it is `dbaas_portal` (Path=/portal): browsers do not keep a Secure cookie from an
//! HTTP origin. Either way it is HttpOnly and SameSite=Strict, and a request carrying the
//! name twice (one of them planted) is not signed in. The state database keeps only
//! their SHA-256, the session's CSRF token, and the user's API token encrypted under the
//! master key. Every request re-authenticates that token, so revoking it, or deleting its
//! tenant, ends the session's access at once. Every POST must carry the session's CSRF
//! token (synchronizer pattern) and, when the browser sends one, a same-origin `Origin`.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use chrono::{Duration, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::api::Api;
use super::layout;
use super::Portal;
pub use crate::signed_in::Session;
use dbaas_crypto::sha256;
use dbaas_domain::auth::authenticate;

/// The session cookie's name and path, and the login form's (before sign-in: its CSRF token,
/// as a cookie of its own, double submit).
struct Cookies {
    session: &'static str,
    login: &'static str,
    path: &'static str,
}

const SECURE_COOKIES: Cookies =
    Cookies { session: "__Host-dbaas_portal", login: "__Host-dbaas_portal_login", path: "/" };
const PLAIN_COOKIES: Cookies = Cookies { session: "dbaas_portal", login: "dbaas_portal_login", path: "/portal" };

fn cookies(portal: &Portal) -> &'static Cookies {
    if portal.state.engine.secure_cookies {
        &SECURE_COOKIES
    } else {
        &PLAIN_COOKIES
    }
}
const SESSION_HOURS: i64 = 12;
const TOKEN_CONTEXT: &str = "portal-session-token";

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: Vec<u8>,
    token_enc: Vec<u8>,
    csrf: String,
}

/// The value of the one cookie called `name`; none when it is missing or there are several
/// (a second one can only have been planted: the service sets one).
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()));
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

fn set_cookie(portal: &Portal, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if portal.state.engine.secure_cookies { "; Secure" } else { "" };
    let path = cookies(portal).path;
    let v = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn random_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Constant-time comparison of two secrets.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<Portal> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Self, Self::Rejection> {
        // A page asked for without a session (a link from elsewhere: the SameSite=Strict
        // cookie is not sent then) comes back after signing in.
        let wanted = (parts.method == axum::http::Method::GET)
            .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_string()))
            .flatten()
            .and_then(|p| safe_next(&p).map(str::to_string));
        let to_login = || match &wanted {
            Some(next) => {
                Redirect::to(&format!("/portal/login?next={}", super::api::query_value(next))).into_response()
            }
            None => Redirect::to("/portal/login").into_response(),
        };
        let Some(raw) = cookie_value(&parts.headers, cookies(portal).session) else { return Err(to_login()) };
        let row: Option<SessionRow> = sqlx::query_as(
            "UPDATE portal_sessions SET last_seen_at = now() WHERE id_hash = $1 AND expires_at > now() \
             RETURNING id_hash, token_enc, csrf",
        )
        .bind(sha256(raw.as_bytes()))
        .fetch_optional(&portal.state.db)
        .await
        .map_err(state_db_down)?;
        let Some(row) = row else { return Err(to_login()) };
        let token = portal.state.key.decrypt(&row.token_enc, TOKEN_CONTEXT).map_err(|_| to_login())?;
        // The token is checked on every request, as the API would: revoked or expired ends it.
        let principal = authenticate(&portal.state.db, &token).await.map_err(|_| to_login())?;
        let request_id = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok(Session {
            id_hash: row.id_hash,
            csrf: row.csrf,
            principal,
            api: Api::new(portal.api.clone(), token, request_id),
        })
    }
}

/// The state database failed: logged with its cause, answered without it.
fn state_db_down(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "portal: the state database failed");
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "the service cannot reach its database; try again shortly")
}

/// A form posted by a signed-in user, its CSRF token and origin checked before anything else.
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// Refuses a POST whose `Origin` (sent by browsers on every POST) is another site's. The
/// request's own host is its `Host` header (HTTP/1.1) or its URI's authority (HTTP/2, which
/// has no `Host`); `X-Forwarded-Host` is not trusted.
fn check_origin(parts: &Parts) -> Result<(), Box<Response>> {
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(Box::new(layout::error_page(StatusCode::FORBIDDEN, "this form was sent from another site and is refused")))
    }
}

fn csrf_refused() -> Response {
    layout::error_page(
        StatusCode::FORBIDDEN,
        "this form is missing its security token or the token has expired; reload the page and try again",
    )
}

impl<T: DeserializeOwned + Send> FromRequest<Portal> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, portal: &Portal) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        check_origin(&parts).map_err(|r| *r)?;
        let session = Session::from_request_parts(&mut parts, portal).await?;
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map_err(|_| layout::error_page(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"))?;
        let csrf: CsrfField = serde_urlencoded::from_bytes(&bytes).map_err(|_| csrf_refused())?;
        if !same(&csrf.csrf, &session.csrf) {
            return Err(csrf_refused());
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, &format!("the form could not be read: {e}"))
        })?;
        Ok(Posted { session, form })
    }
}

// ------------------------------------------------------------------ sign in and out

/// Where to go after signing in: a portal page of this site only (never another site, never
/// the sign-in page itself), else nowhere in particular.
fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with("/portal/")
        && !next.starts_with("/portal/login")
        && !next.starts_with("/portal/static/")
        && !next.contains("/events")
        && next.len() <= 512
        && !next.contains(['\\', '\r', '\n'])
        && !next.contains("//");
    ok.then_some(next)
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

pub async fn login_page(
    axum::extract::State(portal): axum::extract::State<Portal>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    login_form(&portal, None, StatusCode::OK, safe_next(&q.next))
}

fn login_form(portal: &Portal, error: Option<&str>, status: StatusCode, next: Option<&str>) -> Response {
    let csrf = random_secret();
    let mut resp = (status, layout::login(&csrf, error, next)).into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(portal, cookies(portal).login, &csrf, 3600));
    resp
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

pub async fn login(axum::extract::State(portal): axum::extract::State<Portal>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(r) = check_origin(&parts) {
        return *r;
    }
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return layout::error_page(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large");
    };
    let form: LoginForm = match serde_urlencoded::from_bytes(&bytes) {
        Ok(f) => f,
        Err(_) => return csrf_refused(),
    };
    let expected = cookie_value(&parts.headers, cookies(&portal).login).unwrap_or_default();
    if expected.is_empty() || !same(&form.csrf, &expected) {
        return csrf_refused();
    }
    let token = form.token.trim();
    if token.is_empty() {
        return login_form(
            &portal,
            Some("enter an API token"),
            StatusCode::UNPROCESSABLE_ENTITY,
            safe_next(&form.next),
        );
    }
    let principal = match authenticate(&portal.state.db, token).await {
        Ok(p) => p,
        Err(_) => {
            audit(&portal, "anonymous", None, "POST /portal/login", 401).await;
            return login_form(
                &portal,
                Some("this token is not valid (unknown, revoked or expired)"),
                StatusCode::UNAUTHORIZED,
                safe_next(&form.next),
            );
        }
    };
    let raw = random_secret();
    let expires = Utc::now() + Duration::hours(SESSION_HOURS);
    let created = sqlx::query(
        "INSERT INTO portal_sessions (id_hash, token_id, token_enc, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(sha256(raw.as_bytes()))
    .bind(principal.token_id)
    .bind(portal.state.key.encrypt(token, TOKEN_CONTEXT))
    .bind(random_secret())
    .bind(expires)
    .execute(&portal.state.db)
    .await;
    if let Err(e) = created {
        return state_db_down(e);
    }
    audit(&portal, &principal.actor(), principal.tenant.as_ref().map(|t| t.name.as_str()), "POST /portal/login", 303)
        .await;
    let mut resp = Redirect::to(safe_next(&form.next).unwrap_or("/portal/databases")).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&portal, cookies(&portal).session, &raw, SESSION_HOURS * 3600));
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&portal, cookies(&portal).login, "", 0));
    resp
}

pub async fn logout(axum::extract::State(portal): axum::extract::State<Portal>, posted: Posted<CsrfOnly>) -> Response {
    let s = &posted.session;
    let _ =
        sqlx::query("DELETE FROM portal_sessions WHERE id_hash = $1").bind(&s.id_hash).execute(&portal.state.db).await;
    audit(
        &portal,
        &s.principal.actor(),
        s.principal.tenant.as_ref().map(|t| t.name.as_str()),
        "POST /portal/logout",
        303,
    )
    .await;
    let mut resp = layout::see_other("/portal/login");
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&portal, cookies(&portal).session, "", 0));
    resp
}

/// A form with nothing but its CSRF token (sign out, cancel, take a backup …).
#[derive(Deserialize)]
pub struct CsrfOnly {}

/// Sign-in and sign-out go to the audit log beside the API's own rows.
async fn audit(portal: &Portal, actor: &str, tenant: Option<&str>, action: &str, status: u16) {
    let res =
        sqlx::query("INSERT INTO audit_log (actor, tenant, action, target, status_code) VALUES ($1, $2, $3, $4, $5)")
            .bind(actor)
            .bind(tenant)
            .bind(action)
            .bind("/portal")
            .bind(i32::from(status))
            .execute(&portal.state.db)
            .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "writing the audit log failed");
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method("POST").uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap_or_default().into_parts().0
    }

    #[test]
    fn origin_must_be_this_host() {
        // HTTP/1.1: the Host header.
        assert!(check_origin(&parts(
            "/portal/x",
            &[("host", "db.example:8080"), ("origin", "https://db.example:8080")]
        ))
        .is_ok());
        assert!(check_origin(&parts(
            "/portal/x",
            &[("host", "db.example:8080"), ("origin", "https://DB.example:8080")]
        ))
        .is_ok());
        assert!(check_origin(&parts("/portal/x", &[("host", "db.example:8080"), ("origin", "https://evil.example")]))
            .is_err());
        // HTTP/2 has no Host: the URI's authority.
        assert!(
            check_origin(&parts("https://db.example:8080/portal/x", &[("origin", "https://db.example:8080")])).is_ok()
        );
        assert!(
            check_origin(&parts("https://db.example:8080/portal/x", &[("origin", "https://evil.example")])).is_err()
        );
        // `Origin: null` (a sandboxed frame, a privacy setting) is another site; no host at all refuses.
        assert!(check_origin(&parts("/portal/x", &[("host", "db.example"), ("origin", "null")])).is_err());
        assert!(check_origin(&parts("/portal/x", &[("origin", "https://db.example")])).is_err());
        // X-Forwarded-Host is not trusted.
        assert!(check_origin(&parts(
            "/portal/x",
            &[("host", "db.example"), ("x-forwarded-host", "evil.example"), ("origin", "https://evil.example")]
        ))
        .is_err());
        // No Origin (not a browser form): the CSRF token decides.
        assert!(check_origin(&parts("/portal/x", &[("host", "db.example")])).is_ok());
    }

    #[test]
    fn after_sign_in_only_portal_pages() {
        assert_eq!(safe_next("/portal/databases/1?x=y"), Some("/portal/databases/1?x=y"));
        for bad in [
            "https://evil.example/portal/",
            "//evil.example/portal/",
            "/portal//evil.example",
            "/portal/login",
            "/portal/operations/events",
            "/v1/databases",
            "/portal/x\\evil",
            "/portal/x\r\nSet-Cookie: a=b",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}

#[cfg(test)]
mod cookie_tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(header::COOKIE, HeaderValue::from_str(c).unwrap_or_else(|_| HeaderValue::from_static("")));
        }
        h
    }

    #[test]
    fn exactly_one_cookie_of_the_name_is_read() {
        assert_eq!(cookie_value(&headers(&["a=1; dbaas_portal=x"]), "dbaas_portal").as_deref(), Some("x"));
        assert_eq!(cookie_value(&headers(&["dbaas_portal=x; dbaas_portal=y"]), "dbaas_portal"), None);
        assert_eq!(cookie_value(&headers(&["dbaas_portal=x", "dbaas_portal=y"]), "dbaas_portal"), None);
        assert_eq!(cookie_value(&headers(&["dbaas_portal_login=x"]), "dbaas_portal"), None);
        assert_eq!(cookie_value(&headers(&[]), "dbaas_portal"), None);
    }
}
