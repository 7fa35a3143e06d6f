//! The portal calls the `/v1` API in-process, with the signed-in user's own token: the same
//! handlers, validation, authorization, idempotency and audit as any other client, and no
//! second implementation of any of it. A page is what the API answers, rendered.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use dbaas_client::{FieldError, Problem};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower::ServiceExt;

/// The API as one user sees it.
#[derive(Clone)]
pub struct Api {
    router: Router,
    token: String,
    /// The browser request's id, carried to the API calls it makes (their audit rows).
    request_id: Option<String>,
}

/// Why a call did not give the expected body.
#[derive(Debug)]
pub enum ApiFailure {
    /// The API answered with a problem (RFC 9457): shown to the user as it is.
    Problem(Problem),
    /// The answer could not be read: a bug, logged, shown as a generic error.
    Broken(String),
}

impl ApiFailure {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Problem(p) => StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Self::Broken(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The field errors of a validation problem, for messages next to the form's fields.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Problem(p) => &p.errors,
            Self::Broken(_) => &[],
        }
    }

    /// One line for the user.
    pub fn message(&self) -> String {
        match self {
            Self::Problem(p) if !p.detail.is_empty() => p.detail.clone(),
            Self::Problem(p) => p.title.clone(),
            Self::Broken(cause) => {
                tracing::error!(cause, "portal: an API answer could not be used");
                "the service could not answer; see its log".into()
            }
        }
    }
}

impl Api {
    pub fn new(router: Router, token: String, request_id: Option<String>) -> Self {
        Self { router, token, request_id }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiFailure> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// A text answer (the Prometheus exposition format).
    pub async fn get_text(&self, path: &str) -> Result<String, ApiFailure> {
        let (status, bytes) = self.send(Method::GET, path, None::<&()>).await?;
        if status.is_success() {
            String::from_utf8(bytes.to_vec()).map_err(|e| ApiFailure::Broken(e.to_string()))
        } else {
            Err(problem(status, &bytes))
        }
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ApiFailure> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiFailure> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiFailure> {
        let (status, bytes) = self.send(method, path, body).await?;
        if !status.is_success() {
            return Err(problem(status, &bytes));
        }
        // 204: no body; callers that expect none ask for `serde_json::Value`.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| {
            tracing::error!(error = %e, path, "the portal could not read the API's answer");
            ApiFailure::Broken(e.to_string())
        })
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, axum::body::Bytes), ApiFailure> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        if let Some(id) = &self.request_id {
            req = req.header("x-request-id", id);
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(b).map_err(|e| ApiFailure::Broken(e.to_string()))?)
            }
            None => Body::empty(),
        };
        let req = req.body(body).map_err(|e| ApiFailure::Broken(e.to_string()))?;
        let resp = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .map_err(|e| ApiFailure::Broken(format!("reading the API's answer: {e}")))?;
        Ok((status, bytes))
    }
}

fn problem(status: StatusCode, bytes: &[u8]) -> ApiFailure {
    match serde_json::from_slice::<Problem>(bytes) {
        Ok(p) => ApiFailure::Problem(p),
        Err(e) => ApiFailure::Broken(format!("{status}: {e}")),
    }
}

/// A query-string value, form-encoded.
pub fn query_value(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|q| q[1..].to_string()).unwrap_or_default()
}
