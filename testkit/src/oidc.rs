//! A real OIDC issuer for tests: a discovery document and a JWKS served over HTTP on
//! loopback, RSA and EC keys made by openssl, and GitLab-shaped identity tokens signed with
//! them (the API's and the provider's tests share it).

use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A signing key and its public JWK.
pub struct Key {
    pub kid: String,
    pub alg: Algorithm,
    pub pem: Vec<u8>,
    pub jwk: Value,
}

pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().expect("test issuer");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

pub fn rsa_key(dir: &std::path::Path, kid: &str) -> Key {
    let path = dir.join(format!("{kid}.pem"));
    let p = path.to_str().expect("test issuer");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p]);
    let modulus = String::from_utf8(openssl(&["rsa", "-in", p, "-noout", "-modulus"])).expect("test issuer");
    let hex = modulus.trim().trim_start_matches("Modulus=");
    let n: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("test issuer")).collect();
    Key {
        kid: kid.into(),
        alg: Algorithm::RS256,
        pem: std::fs::read(&path).expect("test issuer"),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": B64.encode(n), "e": "AQAB"}),
    }
}

pub fn ec_key(dir: &std::path::Path, kid: &str) -> Key {
    let path = dir.join(format!("{kid}.pem"));
    let p = path.to_str().expect("test issuer");
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p]);
    let spki = openssl(&["pkey", "-in", p, "-pubout", "-outform", "DER"]);
    // The uncompressed point closes the SubjectPublicKeyInfo: 0x04 || X || Y.
    let point = &spki[spki.len() - 65..];
    assert_eq!(point[0], 4);
    Key {
        kid: kid.into(),
        alg: Algorithm::ES256,
        pem: std::fs::read(&path).expect("test issuer"),
        jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])}),
    }
}

/// The issuer: its discovery document and the keys it publishes now.
pub struct Issuer {
    pub url: String,
    pub published: Arc<Mutex<Vec<Value>>>,
}

pub async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("test issuer");
    let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("test issuer").port());
    let published: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (doc_url, keys) = (url.clone(), published.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                let u = doc_url.clone();
                async move { axum::Json(json!({"issuer": u, "jwks_uri": format!("{u}/oauth/discovery/keys")})) }
            }),
        )
        .route(
            "/oauth/discovery/keys",
            axum::routing::get(move || {
                let k = keys.lock().expect("test issuer").clone();
                async move { axum::Json(json!({ "keys": k })) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("test issuer") });
    Issuer { url, published }
}

pub const AUD: &str = "https://dbaas.example.com";

/// A GitLab CI job's identity token's claims.
pub fn job(iss: &str, project: &str, git_ref: &str, protected: bool) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": iss, "aud": AUD, "iat": now, "nbf": now - 5, "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": format!("project_path:acme/app:ref_type:branch:ref:{git_ref}"),
        "namespace_id": "7", "namespace_path": "acme", "project_id": project, "project_path": "acme/app",
        "user_id": "3", "user_login": "alice", "user_email": "alice@example.com",
        "pipeline_id": "1001", "pipeline_source": "push", "job_id": "5001",
        "ref": git_ref, "ref_type": "branch", "ref_path": format!("refs/heads/{git_ref}"),
        "ref_protected": protected.to_string(), "environment": "prod", "environment_protected": protected.to_string(),
        "runner_id": "9", "runner_environment": "self-hosted", "sha": "0123abcd"
    })
}

pub fn sign(key: &Key, claims: &Value) -> String {
    let header = Header { kid: Some(key.kid.clone()), ..Header::new(key.alg) };
    let enc = match key.alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&key.pem).expect("test issuer"),
        _ => EncodingKey::from_ec_pem(&key.pem).expect("test issuer"),
    };
    jsonwebtoken::encode(&header, claims, &enc).expect("test issuer")
}
