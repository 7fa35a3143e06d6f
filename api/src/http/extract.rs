//! Extractors that turn every malformed request into a problem+json answer.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` whose rejections are problems: malformed JSON → 400, wrong shape → 422.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::BadRequest(format!("malformed JSON: {}", e.body_text()), "malformed_json"))
            }
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Unprocessable("invalid_body", e.body_text())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::BadRequest(
                "send the body as JSON with `Content-Type: application/json`".into(),
                "unsupported_media_type",
            )),
            Err(e) => Err(ApiError::BadRequest(e.body_text(), "bad_request")),
        }
    }
}

/// `Query<T>` with problem rejections.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::BadRequest(e.body_text(), "invalid_query"))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text(), "invalid_query")),
        }
    }
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

/// Parses durations such as `30s`, `500ms`, `15m`, `2h`, `7d` or bare seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; use a whole number with a unit: 30s, 15m, 2h, 7d"))?;
    let secs = match unit {
        "ms" => return Ok(std::time::Duration::from_millis(n)),
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        other => return Err(format!("unknown unit {other:?} in {text:?}; use ms, s, m, h or d")),
    };
    secs.map(std::time::Duration::from_secs).ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "-1s", "abc", "1.5h", "10y", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
