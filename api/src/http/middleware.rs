//! Cross-cutting request handling: metrics, audit log and `Idempotency-Key`.

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::ActorSlot;
use crate::crypto::sha256;
use crate::error::{problem_response, ApiError};
use crate::metrics::HttpLabels;
use crate::state::AppState;

/// Largest request body accepted for idempotent replay bookkeeping.
pub const MAX_BODY: usize = 1 << 20;
/// An in-progress idempotency record older than this is taken to be abandoned by a crash.
const ABANDONED_AFTER: Duration = Duration::from_secs(120);

pub async fn metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // Bounded label values: any other method (anyone can send one, unauthenticated) is `other`.
    let method = match *req.method() {
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::OPTIONS => {
            req.method().as_str().to_string()
        }
        _ => "other".to_string(),
    };
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let labels = HttpLabels { method, route, status: resp.status().as_u16() };
    state.metrics.http_requests.get_or_create(&labels).inc();
    state.metrics.http_duration.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
    resp
}

/// Removes a request id the client sent: ids are the server's to give (an id from outside
/// would let a caller write what it likes into the audit log, or pose as another request).
pub async fn drop_client_request_id(mut req: Request, next: Next) -> Response {
    req.headers_mut().remove("x-request-id");
    next.run(req).await
}

/// Records every mutating call (actor, action, target, request id, status).
pub async fn audit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !mutating {
        return next.run(req).await;
    }
    let slot = ActorSlot::default();
    req.extensions_mut().insert(slot.clone());
    let action = format!(
        "{} {}",
        req.method(),
        req.extensions().get::<MatchedPath>().map(|p| p.as_str()).unwrap_or("unmatched")
    );
    let target = req.uri().path().to_string();
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let resp = next.run(req).await;
    let (actor, tenant) = match slot.0.get() {
        Some(p) => (p.actor(), p.tenant.as_ref().map(|t| t.name.clone())),
        None => ("anonymous".to_string(), None),
    };
    let res = sqlx::query(
        "INSERT INTO audit_log (actor, tenant, action, target, request_id, status_code) VALUES ($1,$2,$3,$4,$5,$6)",
    )
    .bind(actor)
    .bind(tenant)
    .bind(action)
    .bind(target)
    .bind(request_id)
    .bind(i32::from(resp.status().as_u16()))
    .execute(&state.db)
    .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "writing the audit log failed");
    }
    resp
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    request_hash: Vec<u8>,
    status_code: Option<i32>,
    response: Option<Vec<u8>>,
    fresh: bool,
}

/// `Idempotency-Key` on POST: the first answer is stored and replayed for retries of the same
/// request by the same caller; a different request under the same key is refused.
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k.to_string(),
        _ => {
            return ApiError::BadRequest(
                "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                "invalid_idempotency_key",
            )
            .into_response()
        }
    };
    // Authenticate first: a request without a valid token reserves nothing (the handler
    // answers it with 401), and every replay re-checks the caller, so a revoked token gets no
    // stored answer back. Keys are per token.
    let (mut parts, body) = req.into_parts();
    let principal = match crate::auth::bearer(&parts) {
        Some(secret) => crate::auth::authenticate(&state.db, secret).await.ok(),
        None => None,
    };
    let Some(principal) = principal else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let principal_id = format!("token:{}", principal.token_id);
    parts.extensions.insert(principal);
    let principal = principal_id;
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge(format!("the body is over {MAX_BODY} bytes")).into_response(),
    };
    let path = parts.uri.path().to_string();
    let mut fingerprint = path.as_bytes().to_vec();
    fingerprint.push(0);
    fingerprint.extend_from_slice(&bytes);
    let request_hash = sha256(&fingerprint);

    let claimed = sqlx::query_as::<_, KeyRow>(
        "INSERT INTO idempotency_keys (principal, key, method, path, request_hash) VALUES ($1,$2,'POST',$3,$4) \
         ON CONFLICT (principal, key) DO UPDATE SET created_at = now(), request_hash = EXCLUDED.request_hash, \
             status_code = NULL, response = NULL \
           WHERE (idempotency_keys.status_code IS NULL AND idempotency_keys.created_at < now() - $5::interval) \
              OR idempotency_keys.created_at < now() - $6::interval \
         RETURNING request_hash, status_code, response, true AS fresh",
    )
    .bind(&principal)
    .bind(&key)
    .bind(&path)
    .bind(&request_hash)
    .bind(format!("{} seconds", ABANDONED_AFTER.as_secs()))
    // An expired key is a new key (the retention loop deletes such rows too).
    .bind(format!("{} seconds", crate::ops::retention::IDEMPOTENCY_TTL.as_secs()))
    .fetch_optional(&state.db)
    .await;
    let existing = match claimed {
        Ok(Some(_)) => None,
        Ok(None) => match sqlx::query_as::<_, KeyRow>(
            "SELECT request_hash, status_code, response, false AS fresh FROM idempotency_keys WHERE principal=$1 AND key=$2",
        )
        .bind(&principal)
        .bind(&key)
        .fetch_optional(&state.db)
        .await
        {
            Ok(Some(row)) => Some(row),
            // Purged between the two statements: nothing is reserved, so running the request
            // now would not be idempotent; the client's retry reserves the key afresh.
            Ok(None) => return in_progress(),
            // Never run the request unguarded because the bookkeeping failed.
            Err(e) => return ApiError::Database(e).into_response(),
        },
        Err(e) => return ApiError::Database(e).into_response(),
    };
    if let Some(row) = existing {
        debug_assert!(!row.fresh);
        if row.request_hash != request_hash {
            return problem_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request".into(),
                vec![],
            );
        }
        let context = format!("idempotency:{principal}:{key}");
        let stored = row.response.map(|enc| state.key.decrypt(&enc, &context));
        return match (row.status_code, stored) {
            (Some(_), Some(Err(e))) => ApiError::Internal(anyhow::Error::from(e)).into_response(),
            (Some(code), Some(Ok(body))) => {
                let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::OK);
                let mut resp = (status, body).into_response();
                let media = if status.is_success() { "application/json" } else { crate::http::contract::PROBLEM_JSON };
                resp.headers_mut().insert("content-type", HeaderValue::from_static(media));
                resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
                resp
            }
            _ => in_progress(),
        };
    }

    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = resp.status();
    let (rparts, rbody) = resp.into_parts();
    let rbytes = to_bytes(rbody, usize::MAX).await.unwrap_or_default();
    let store = if status.is_server_error() {
        // Let the client retry for real: forget the key.
        sqlx::query("DELETE FROM idempotency_keys WHERE principal=$1 AND key=$2")
            .bind(&principal)
            .bind(&key)
            .execute(&state.db)
            .await
    } else {
        // Answers can carry secrets (a new token, credentials): stored encrypted, bound to
        // this caller and key.
        let context = format!("idempotency:{principal}:{key}");
        let sealed = state.key.encrypt(&String::from_utf8_lossy(&rbytes), &context);
        sqlx::query("UPDATE idempotency_keys SET status_code=$3, response=$4 WHERE principal=$1 AND key=$2")
            .bind(&principal)
            .bind(&key)
            .bind(i32::from(status.as_u16()))
            .bind(sealed)
            .execute(&state.db)
            .await
    };
    if let Err(e) = store {
        tracing::error!(error = %e, "storing the idempotent response failed");
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

/// 409: the key is taken by a request still running (or just forgotten); retry shortly.
fn in_progress() -> Response {
    problem_response(
        StatusCode::CONFLICT,
        "idempotency_key_in_progress",
        "a request with this Idempotency-Key is still being processed; retry shortly".into(),
        vec![],
    )
}

/// Every error is a problem: answers that axum's own extractors and layers write as plain
/// text (a path segment that is not a UUID, a missing path parameter, …) are rewritten as
/// `application/problem+json` with their message. NUL bytes in the path or query string are
/// refused before any handler sees them (PostgreSQL text cannot hold them).
pub async fn problems(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map(|p| p.as_str().to_ascii_lowercase()).unwrap_or_default();
    if target.contains("%00") {
        return ApiError::BadRequest("the path or query string holds a NUL byte".into(), "invalid_characters")
            .into_response();
    }
    let resp = next.run(req).await;
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(crate::http::contract::PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let detail = match to_bytes(resp.into_body(), 4096).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_input",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    crate::error::problem_response(status, code, detail, vec![])
}
