//! `POST /v1/auth/oidc`: an identity token (a CI job's) for a short-lived API token. The
//! token is checked in this order, and a refusal names the check that failed (never the
//! token): its form and algorithm (RS256 or ES256 only: `none` and HMAC are refused before
//! any key is looked at), a trusted issuer (one some binding names), the issuer's key, the
//! signature, `aud`, `exp`, `nbf` and `iat` (with [`LEEWAY`]), a binding of that issuer and
//! audience whose claims match, and that its `jti` was never exchanged before (in the state
//! database, so across replicas). The API token expires with the identity token, at most
//! [`MAX_LIFETIME`] after the exchange.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::claims::{claim_text, mismatch};
use super::jwks::{self, KeyError};
use crate::error::ApiError;

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY: u64 = 30;
/// The longest an exchanged token lives.
pub const MAX_LIFETIME: chrono::Duration = chrono::Duration::hours(1);

/// A binding as the exchange reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BindingRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub claims: sqlx::types::Json<BTreeMap<String, String>>,
    pub access: String,
}

/// What an accepted token gives.
#[derive(Debug)]
pub struct Accepted {
    pub binding: BindingRow,
    pub claims: Map<String, Value>,
    pub expires_at: DateTime<Utc>,
}

fn refused(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unauthenticated(code, message.into())
}

/// The claims of a token, unverified: only to learn which issuer to ask for its key.
fn peek(token: &str) -> Result<Map<String, Value>, ApiError> {
    let payload =
        token.split('.').nth(1).ok_or_else(|| refused("malformed_token", "not a JWT (header.payload.signature)"))?;
    let bytes =
        URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused("malformed_token", "the payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| refused("malformed_token", "the payload is not a JSON object"))
}

pub async fn verify(db: &sqlx::PgPool, token: &str, tenant: Option<&str>) -> Result<Accepted, ApiError> {
    if token.len() > 16 * 1024 || token.split('.').count() != 3 {
        return Err(refused("malformed_token", "not a JWT (header.payload.signature)"));
    }
    // The algorithm first: `alg: none` and unknown names fail to parse here.
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        refused("unsupported_algorithm", "the header is unreadable or names an algorithm other than RS256/ES256")
    })?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(refused(
            "unsupported_algorithm",
            format!("{:?} tokens are refused: RS256 or ES256 only", header.alg),
        ));
    }
    let kid = header.kid.ok_or_else(|| refused("unknown_key", "the header names no key (kid)"))?;
    let unverified = peek(token)?;
    let issuer = unverified.get("iss").and_then(Value::as_str).unwrap_or_default().to_string();
    let bindings: Vec<BindingRow> = sqlx::query_as(
        "SELECT b.id, b.tenant_id, t.name AS tenant_name, b.name, b.issuer, b.audience, b.claims, b.access \
         FROM oidc_bindings b JOIN tenants t ON t.id = b.tenant_id \
         WHERE b.issuer = $1 AND t.deleted_at IS NULL ORDER BY t.name, b.name",
    )
    .bind(&issuer)
    .fetch_all(db)
    .await?;
    if bindings.is_empty() {
        return Err(refused("untrusted_issuer", format!("no trust binding names issuer {issuer:?}")));
    }
    let jwk = jwks::key(&issuer, &kid).await.map_err(|e| match e {
        KeyError::Unknown(m) => refused("unknown_key", m),
        KeyError::Unreachable(m) => ApiError::Unavailable(format!("the issuer's keys cannot be read: {m}")),
    })?;
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|e| refused("unknown_key", format!("the issuer's key {kid:?} is unusable: {e}")))?;
    let mut v = Validation::new(header.alg);
    v.leeway = LEEWAY;
    v.validate_nbf = true;
    v.set_issuer(&[&issuer]);
    let audiences: Vec<&str> = bindings.iter().map(|b| b.audience.as_str()).collect();
    v.set_audience(&audiences);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => refused("bad_signature", "the signature does not verify with the issuer's key"),
            K::ExpiredSignature => refused("expired", "the token has expired"),
            K::ImmatureSignature => refused("not_yet_valid", "the token is not valid yet (nbf)"),
            K::InvalidAudience => refused("wrong_audience", "no binding of this issuer accepts the token's audience"),
            K::InvalidIssuer => refused("untrusted_issuer", "the issuer does not match"),
            K::MissingRequiredClaim(c) => refused("missing_claim", format!("the token has no {c} claim")),
            K::InvalidAlgorithm => refused("unsupported_algorithm", "the token's algorithm does not match its key"),
            _ => refused("bad_signature", format!("the token does not verify: {e}")),
        }
    })?;
    let claims = data.claims;
    let now = Utc::now().timestamp();
    let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(i64::MAX);
    if iat > now + LEEWAY as i64 {
        return Err(refused("issued_in_future", "the token was issued in the future (iat)"));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    // The bindings of this audience (and tenant, when the caller names one) the claims meet.
    let mut why = Vec::new();
    let matching: Vec<&BindingRow> = bindings
        .iter()
        .filter(|b| aud.contains(&b.audience) && tenant.is_none_or(|t| t == b.tenant_name))
        .filter(|b| match mismatch(&b.claims.0, &claims) {
            None => true,
            Some(m) => {
                why.push(format!("{}/{}: {m}", b.tenant_name, b.name));
                false
            }
        })
        .collect();
    let Some(first) = matching.first() else {
        return Err(refused(
            "no_matching_binding",
            format!("no trust binding matches the token's claims ({})", why.join("; ")),
        ));
    };
    if matching.iter().any(|b| b.tenant_id != first.tenant_id) {
        return Err(refused(
            "ambiguous_binding",
            "bindings of several tenants match: name the tenant in the request (`tenant`)",
        ));
    }
    // Several of one tenant (a protected-branch binding and an any-branch one): the one that
    // requires the most of the token, the least specific never wins over it.
    let binding =
        matching.iter().max_by_key(|b| b.claims.0.len()).map(|b| (*b).clone()).unwrap_or_else(|| (*first).clone());
    let jti = claim_text(&claims, "jti").ok_or_else(|| refused("missing_claim", "the token has no jti claim"))?;
    let expires = DateTime::from_timestamp(exp, 0).unwrap_or_else(Utc::now);
    // Seen jtis are kept until their token expired (plus the leeway); older ones go here.
    sqlx::query("DELETE FROM oidc_jti WHERE expires_at < now() - interval '1 hour'").execute(db).await?;
    let fresh = sqlx::query(
        "INSERT INTO oidc_jti (issuer, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (issuer, jti) DO NOTHING",
    )
    .bind(&issuer)
    .bind(&jti)
    .bind(expires)
    .execute(db)
    .await?
    .rows_affected();
    if fresh == 0 {
        return Err(refused("replayed", "this token was already exchanged (jti seen before)"));
    }
    Ok(Accepted { binding, claims, expires_at: expires.min(Utc::now() + MAX_LIFETIME) })
}

/// The job's claims for the audit log: who signed in, from what.
pub fn describe(claims: &Map<String, Value>) -> String {
    ["project_path", "project_id", "pipeline_id", "job_id", "ref", "ref_type", "environment", "user_login", "sub"]
        .iter()
        .filter_map(|k| claim_text(claims, k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `iss` and `sub` of the token, for the audit log's actor.
pub fn subject(claims: &Map<String, Value>) -> String {
    format!("{}#{}", claim_text(claims, "iss").unwrap_or_default(), claim_text(claims, "sub").unwrap_or_default())
}
