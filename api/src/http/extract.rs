//! Extractors that turn every malformed request into a problem+json answer.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use dbaas_client::FieldError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` whose rejections are problems: malformed JSON → 400, wrong shape → 422.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => from_value(v).map(Self),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::BadRequest(format!("malformed JSON: {}", e.body_text()), "malformed_json"))
            }
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Unprocessable("invalid_body", e.body_text())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            )),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge(format!("the body is over {} bytes", super::middleware::MAX_BODY)))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text(), "bad_request")),
        }
    }
}

/// A request body as `T`: a JSON object (a struct must not be read from an array), with no
/// NUL character in any key or string (PostgreSQL text cannot hold one), each named in 422.
fn from_value<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    if !v.is_object() {
        return Err(ApiError::Unprocessable("invalid_body", "the body must be a JSON object".into()));
    }
    let mut errors = Vec::new();
    find_nul(&v, "", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    serde_json::from_value(v).map_err(|e| ApiError::Unprocessable("invalid_body", e.to_string()))
}

fn find_nul(v: &serde_json::Value, at: &str, errors: &mut Vec<FieldError>) {
    let nul = |field: String| FieldError {
        field,
        code: "invalid_characters".into(),
        message: "must not contain a NUL character".into(),
    };
    match v {
        serde_json::Value::String(s) if s.contains('\0') => errors.push(nul(at.to_string())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_nul(item, &format!("{at}[{i}]"), errors);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                let field = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                if k.contains('\0') {
                    errors.push(nul(field.clone()));
                }
                find_nul(item, &field, errors);
            }
        }
        _ => {}
    }
}

/// `Query<T>` with problem rejections.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or("")).map(Self)
    }
}

/// A query string as `T`, or 422 naming each parameter that does not fit (an enum value
/// outside the enum, a number or boolean that is not one, a repeated parameter). Filters
/// never fall back to "everything".
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let whole = match serde_urlencoded::from_str::<T>(query) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let mut errors = Vec::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        let repeated = pairs[..i].iter().any(|(n, _)| n == name);
        let alone = serde_urlencoded::to_string([(name, value)]).unwrap_or_default();
        if repeated {
            errors.push(FieldError { field: name.clone(), code: "repeated".into(), message: "give it once".into() });
        } else if let Err(e) = serde_urlencoded::from_str::<T>(&alone) {
            errors.push(FieldError { field: name.clone(), code: "invalid_value".into(), message: e.to_string() });
        }
    }
    if errors.is_empty() {
        errors.push(FieldError { field: "query".into(), code: "invalid_query".into(), message: whole.to_string() });
    }
    Err(ApiError::Validation(errors))
}

/// The version named by `If-Match: "<n>"`, if the header is present.
pub fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(axum::http::header::IF_MATCH) else { return Ok(None) };
    let text = v.to_str().unwrap_or("").trim().trim_start_matches("W/").trim_matches('"');
    text.parse::<i64>().map(Some).map_err(|_| {
        ApiError::BadRequest(
            format!("If-Match must be an ETag from this API, like \"3\" (got {text:?})"),
            "invalid_if_match",
        )
    })
}

pub use dbaas_client::duration::parse_duration;

#[cfg(test)]
mod tests {
    use dbaas_client::{Environment, OperationStatus};

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Filter {
        environment: Option<Environment>,
        status: Option<OperationStatus>,
        #[serde(default)]
        include_deleted: bool,
    }

    fn fields(e: ApiError) -> Vec<(String, String)> {
        match e {
            ApiError::Validation(errs) => errs.into_iter().map(|f| (f.field, f.code)).collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn filters_outside_their_enum_are_refused_by_name() {
        let ok: Filter = parse_query("environment=prod&include_deleted=true").expect("valid");
        assert_eq!((ok.environment, ok.status, ok.include_deleted), (Some(Environment::Prod), None, true));
        let e = parse_query::<Filter>("environment=junk&status=nope&include_deleted=maybe").expect_err("junk");
        let want = ["environment", "status", "include_deleted"].map(|f| (f.to_string(), "invalid_value".to_string()));
        assert_eq!(fields(e), want.to_vec());
        let e = parse_query::<Filter>("environment=prod&environment=dev").expect_err("repeated");
        assert_eq!(fields(e), vec![("environment".to_string(), "repeated".to_string())]);
    }

    #[test]
    fn bodies_are_objects_without_nul() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[allow(dead_code)]
            max: Option<i32>,
        }
        let e = from_value::<Body>(serde_json::json!([null, null])).expect_err("array");
        assert!(matches!(e, ApiError::Unprocessable("invalid_body", _)), "{e:?}");
        let e = from_value::<serde_json::Value>(serde_json::json!({"labels": {"a\u{0}": "x", "b": ["ok", "n\u{0}"]}}))
            .expect_err("nul");
        assert_eq!(
            fields(e),
            vec![
                ("labels.a\u{0}".to_string(), "invalid_characters".to_string()),
                ("labels.b[1]".to_string(), "invalid_characters".to_string())
            ]
        );
    }
}
