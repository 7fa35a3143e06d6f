//! The one error type of the HTTP layer, rendered as RFC 9457 problem+json.
//! Internal errors are logged with their cause and answered with a generic 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dbaas_client::{FieldError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String, &'static str),
    #[error("authentication required")]
    Unauthenticated(&'static str, String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {1}")]
    Conflict(&'static str, String),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("unprocessable: {1}")]
    Unprocessable(&'static str, String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// 429 with `Retry-After` (seconds).
    #[error("rate limited: {0}")]
    RateLimited(String, u64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A validation error on one field.
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError { field: field.into(), code: code.into(), message: message.into() }])
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Validation(errs) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "),
            ),
            Self::BadRequest(d, code) => (StatusCode::BAD_REQUEST, code, d.clone()),
            Self::Unauthenticated(code, d) => (StatusCode::UNAUTHORIZED, code, d.clone()),
            Self::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d.clone()),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, "not_found", format!("{what} not found")),
            Self::Conflict(code, d) => (StatusCode::CONFLICT, code, d.clone()),
            Self::PreconditionFailed(d) => (StatusCode::PRECONDITION_FAILED, "precondition_failed", d.clone()),
            Self::Unprocessable(code, d) => (StatusCode::UNPROCESSABLE_ENTITY, code, d.clone()),
            Self::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", d.clone()),
            Self::PayloadTooLarge(d) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", d.clone()),
            Self::UnsupportedMediaType(d) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", d.clone()),
            Self::RateLimited(d, _) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", d.clone()),
            Self::Database(e) if named_constraint(e).is_some() => {
                let (status, code, detail) = named_constraint(e).unwrap_or_else(internal_static);
                (status, code, detail.to_string())
            }
            Self::Database(e) => match constraint_kind(e) {
                Some(ConstraintKind::Unique) => {
                    (StatusCode::CONFLICT, "already_exists", "a resource with that name already exists".into())
                }
                Some(ConstraintKind::Check) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "constraint_violation", "a value is out of range".into())
                }
                Some(ConstraintKind::ForeignKey) => (
                    StatusCode::CONFLICT,
                    "in_use",
                    "the resource is referenced by others and cannot be changed this way".into(),
                ),
                None => internal(),
            },
            Self::Internal(_) => internal(),
        }
    }
}

fn internal() -> (StatusCode, &'static str, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log for the request id".into())
}

fn internal_static() -> (StatusCode, &'static str, &'static str) {
    (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log for the request id")
}

/// Constraints whose violation has a specific meaning for the caller, by name.
fn named_constraint(e: &sqlx::Error) -> Option<(StatusCode, &'static str, &'static str)> {
    match e.as_database_error()?.constraint()? {
        "databases_instance_physical" => Some((
            StatusCode::CONFLICT,
            "name_conflict",
            "another database record already uses this physical name on the instance",
        )),
        "credentials_lease_role" => {
            Some((StatusCode::CONFLICT, "name_conflict", "a lease with this role name already exists; retry"))
        }
        _ => None,
    }
}

enum ConstraintKind {
    Unique,
    Check,
    ForeignKey,
}

fn constraint_kind(e: &sqlx::Error) -> Option<ConstraintKind> {
    let db = e.as_database_error()?;
    match db.code()?.as_ref() {
        "23505" => Some(ConstraintKind::Unique),
        "23514" => Some(ConstraintKind::Check),
        "23503" => Some(ConstraintKind::ForeignKey),
        _ => None,
    }
}

/// Builds a problem response; also used for rejections outside handlers.
pub fn problem_response(status: StatusCode, code: &str, detail: String, errors: Vec<FieldError>) -> Response {
    let problem = Problem {
        type_: format!("https://dbaas.dev/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        code: code.to_string(),
        detail,
        errors,
        request_id: None,
    };
    let mut resp = (status, axum::Json(problem)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = self.parts();
        if status.is_server_error() {
            // The cause goes to the log only: it may name tables, hosts or worse.
            tracing::error!(error = ?self, "request failed");
        }
        let retry_after = match &self {
            Self::RateLimited(_, secs) => Some(*secs),
            _ => None,
        };
        let errors = match self {
            Self::Validation(errs) => errs,
            _ => Vec::new(),
        };
        let mut resp = problem_response(status, code, detail, errors);
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"dbaas\""));
        }
        resp
    }
}

/// Collects field errors so a request reports all of them at once.
#[derive(Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), code: code.into(), message: message.into() });
    }
    pub fn check(&mut self, field: &str, code: &str, result: Result<(), String>) {
        if let Err(m) = result {
            self.add(field, code, m);
        }
    }
    pub fn into_result(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}
