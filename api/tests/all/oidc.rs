//! Signing in with an OIDC identity token against a real issuer in the suite: a discovery
//! document and a JWKS served over HTTP on loopback, RSA and EC keys made by openssl, a key
//! rotation, and GitLab-shaped tokens signed with jsonwebtoken. Accepted for a matching
//! binding (the API token works, read-only where the binding says so, and the exchange is in
//! the audit log with the job's claims); refused, each with the check that failed, for a
//! wrong audience, an expired, not-yet-valid, replayed or unsigned (`alg: none`) token, an
//! HS256 token signed with the public key, an unknown key after a rotation, another project,
//! an unprotected ref where a protected one is required.
#![allow(clippy::unwrap_used)]

use crate::common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::*;
use dbaas_client::*;
use dbaas_testkit::oidc::{ec_key, issuer, job, openssl, rsa_key, sign, Key, AUD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

async fn exchange(h: &Harness, token: &str) -> Result<OidcToken, ClientError> {
    let anonymous = Client::new(&h.apis[0].endpoint, "none").unwrap();
    anonymous.oidc_exchange(&OidcExchange { token: token.into(), tenant: None }).await
}

async fn refused(h: &Harness, token: &str, code: &str) {
    let e = exchange(h, token).await.unwrap_err();
    let p = e.problem().unwrap_or_else(|| panic!("not a problem: {e}"));
    assert_eq!((p.status, p.code.as_str()), (401, code), "{p:?}");
    assert!(!p.detail.contains(token), "the problem echoes the token");
}

#[tokio::test(flavor = "multi_thread")]
async fn ci_jobs_sign_in_with_their_identity_token() {
    let h = Harness::start().await;
    let tmp = tempdir();
    let iss = issuer().await;
    let (rsa, ec) = (rsa_key(tmp.path(), "rsa-1"), ec_key(tmp.path(), "ec-1"));
    iss.published.lock().unwrap().extend([rsa.jwk.clone(), ec.jwk.clone()]);
    let a = h.tenant("team-a").await;
    let binding = |name: &str, claims: &[(&str, &str)]| CreateOidcBinding {
        tenant: "team-a".into(),
        name: name.into(),
        issuer: iss.url.clone(),
        audience: AUD.into(),
        claims: claims.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        access: None,
        unprotected: false,
    };

    // Bindings that would trust too much are refused at creation.
    for (req, code) in [
        (binding("any-ref", &[("project_id", "42")]), "no_ref_requirement"),
        (binding("any-project", &[("ref_protected", "true")]), "no_project"),
        (binding("glob-project", &[("project_id", "4*"), ("ref", "main")]), "no_project"),
        (binding("by-path", &[("project_path", "acme/app"), ("project_id", "42"), ("ref", "main")]), "unknown_claim"),
        (
            CreateOidcBinding {
                issuer: "http://gitlab.example.com".into(),
                ..binding("plain", &[("project_id", "42"), ("ref", "main")])
            },
            "invalid_issuer",
        ),
    ] {
        let e = h.admin.create_oidc_binding(&req).await.unwrap_err();
        let p = e.problem().unwrap();
        assert_eq!((p.status, p.errors[0].code.as_str()), (422, code), "{p:?}");
    }
    assert!(a.create_oidc_binding(&binding("mine", &[("project_id", "42"), ("ref", "main")])).await.is_err());
    // Protected refs of project 42: full access; its merge requests' pipelines on any ref of
    // the project, explicitly unprotected: read only.
    h.admin.create_oidc_binding(&binding("deploy", &[("project_id", "42"), ("ref_protected", "true")])).await.unwrap();
    h.admin
        .create_oidc_binding(&CreateOidcBinding {
            access: Some(TokenAccess::ReadOnly),
            unprotected: true,
            ..binding("review", &[("project_id", "43")])
        })
        .await
        .unwrap();

    // Accepted (RS256 and ES256): a token of the tenant, expiring with the identity token.
    let claims = job(&iss.url, "42", "main", true);
    let got = exchange(&h, &sign(&rsa, &claims)).await.unwrap();
    assert_eq!((got.tenant.as_str(), got.binding.as_str(), got.access), ("team-a", "deploy", TokenAccess::Full));
    assert!(got.expires_at.timestamp() <= claims["exp"].as_i64().unwrap());
    let ci = Client::new(&h.apis[0].endpoint, &got.token).unwrap();
    let acc = ci
        .create_database(&CreateDatabase {
            name: "from-ci".into(),
            instance: Some("main".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(acc.database.tenant, "team-a");
    let es = exchange(&h, &sign(&ec, &job(&iss.url, "42", "main", true))).await.unwrap();
    assert_eq!(es.binding, "deploy");
    // Another tenant trusting the same project: the job must say which tenant it signs in as.
    h.tenant("team-b").await;
    h.admin
        .create_oidc_binding(&CreateOidcBinding {
            tenant: "team-b".into(),
            ..binding("shared", &[("project_id", "42"), ("ref", "main")])
        })
        .await
        .unwrap();
    refused(&h, &sign(&rsa, &job(&iss.url, "42", "main", true)), "ambiguous_binding").await;
    let anonymous = Client::new(&h.apis[0].endpoint, "none").unwrap();
    let named = OidcExchange { token: sign(&rsa, &job(&iss.url, "42", "main", true)), tenant: Some("team-b".into()) };
    assert_eq!(anonymous.oidc_exchange(&named).await.unwrap().tenant, "team-b");
    let b = h.admin.list_oidc_bindings().await.unwrap().into_iter().find(|b| b.name == "shared").unwrap();
    h.admin.delete_oidc_binding(b.id).await.unwrap();
    // Two bindings of one tenant match a protected job: the one requiring more wins; an
    // unprotected job of the project gets the read-only one only.
    h.admin
        .create_oidc_binding(&CreateOidcBinding {
            access: Some(TokenAccess::ReadOnly),
            unprotected: true,
            ..binding("mr", &[("project_id", "42")])
        })
        .await
        .unwrap();
    let both = exchange(&h, &sign(&rsa, &job(&iss.url, "42", "main", true))).await.unwrap();
    assert_eq!((both.binding.as_str(), both.access), ("deploy", TokenAccess::Full));
    let mr = exchange(&h, &sign(&rsa, &job(&iss.url, "42", "feature/y", false))).await.unwrap();
    assert_eq!((mr.binding.as_str(), mr.access), ("mr", TokenAccess::ReadOnly));
    let b = h.admin.list_oidc_bindings().await.unwrap().into_iter().find(|b| b.name == "mr").unwrap();
    h.admin.delete_oidc_binding(b.id).await.unwrap();
    // Read only: reads work, anything else is 403.
    let ro = exchange(&h, &sign(&rsa, &job(&iss.url, "43", "feature/x", false))).await.unwrap();
    assert_eq!(ro.access, TokenAccess::ReadOnly);
    let reader = Client::new(&h.apis[0].endpoint, &ro.token).unwrap();
    assert!(reader.list_databases("").await.unwrap().iter().any(|d| d.name == "from-ci"));
    let e = reader
        .create_database(&CreateDatabase { name: "nope".into(), instance: Some("main".into()), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.problem().unwrap().status, 403, "{e}");

    // Refused, each naming the check.
    let t = sign(&rsa, &claims);
    refused(&h, &t, "replayed").await;
    let mut c = job(&iss.url, "42", "main", true);
    c["aud"] = json!("https://other.example.com");
    refused(&h, &sign(&rsa, &c), "wrong_audience").await;
    let mut c = job(&iss.url, "42", "main", true);
    c["exp"] = json!(chrono::Utc::now().timestamp() - 120);
    refused(&h, &sign(&rsa, &c), "expired").await;
    let mut c = job(&iss.url, "42", "main", true);
    c["nbf"] = json!(chrono::Utc::now().timestamp() + 600);
    refused(&h, &sign(&rsa, &c), "not_yet_valid").await;
    let mut c = job(&iss.url, "42", "main", true);
    c["iat"] = json!(chrono::Utc::now().timestamp() + 600);
    refused(&h, &sign(&rsa, &c), "issued_in_future").await;
    refused(&h, &sign(&rsa, &job(&iss.url, "44", "main", true)), "no_matching_binding").await;
    refused(&h, &sign(&rsa, &job(&iss.url, "42", "main", false)), "no_matching_binding").await;
    // Unsigned, and HS256 keyed with the issuer's public key.
    let body = B64.encode(serde_json::to_vec(&job(&iss.url, "42", "main", true)).unwrap());
    refused(&h, &format!("{}.{body}.", B64.encode(br#"{"alg":"none","typ":"JWT"}"#)), "unsupported_algorithm").await;
    let public = openssl(&["pkey", "-in", tmp.path().join("rsa-1.pem").to_str().unwrap(), "-pubout"]);
    let hs = jsonwebtoken::encode(
        &Header { kid: Some("rsa-1".into()), ..Header::new(Algorithm::HS256) },
        &job(&iss.url, "42", "main", true),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    refused(&h, &hs, "unsupported_algorithm").await;
    // A token signed by a key that is not the issuer's (same kid): the signature fails.
    let forged = Key { kid: "rsa-1".into(), ..rsa_key(tmp.path(), "forger") };
    refused(&h, &sign(&forged, &job(&iss.url, "42", "main", true)), "bad_signature").await;
    // An issuer no binding names.
    refused(&h, &sign(&rsa, &job("https://gitlab.other.example", "42", "main", true)), "untrusted_issuer").await;

    // Rotation: the issuer publishes a new key and withdraws the old; the new one is fetched
    // on first sight, a key it never published is unknown.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let rsa2 = rsa_key(tmp.path(), "rsa-2");
    *iss.published.lock().unwrap() = vec![rsa2.jwk.clone(), ec.jwk.clone()];
    assert_eq!(exchange(&h, &sign(&rsa2, &job(&iss.url, "42", "main", true))).await.unwrap().binding, "deploy");
    let stranger = Key { kid: "rsa-9".into(), ..rsa_key(tmp.path(), "rsa-9") };
    refused(&h, &sign(&stranger, &job(&iss.url, "42", "main", true)), "unknown_key").await;

    // Audited with the job's claims.
    let mut state = h.state_db().await;
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT actor || ' ' || target FROM audit_log WHERE action = 'oidc.exchange' ORDER BY id")
            .fetch_all(&mut state)
            .await
            .unwrap();
    assert_eq!(audit.len(), 7, "{audit:?}");
    assert!(
        audit[0].contains("project_path=acme/app")
            && audit[0].contains("pipeline_id=1001")
            && audit[0].contains("user_login=alice"),
        "{audit:?}"
    );
    // Deleting a binding revokes what it issued.
    let bindings = h.admin.list_oidc_bindings().await.unwrap();
    let deploy = bindings.iter().find(|b| b.name == "deploy").unwrap();
    h.admin.delete_oidc_binding(deploy.id).await.unwrap();
    assert_eq!(ci.list_databases("").await.unwrap_err().problem().unwrap().status, 401);
}
