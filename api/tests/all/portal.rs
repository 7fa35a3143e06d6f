//! The web portal in a real browser: headless Chromium (Debian's) driven by playwright-core
//! through `tests/browser/portal.mjs`, against a `dbaas-api dev` process. This test makes
//! the tenants (team-a signs in; team-b owns a database team-a must not see), runs the
//! script, and fails with its output when any of its expectations fails. Screenshots of
//! every page land in `target/portal-screenshots/`.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::dev::Dev;
use common::portal::{portal_get, sign_in};
use common::*;
use dbaas_client::*;

fn playwright_core() -> PathBuf {
    let tools = std::env::var("DBAAS_TOOLS_DIR").unwrap_or_else(|_| "/var/tmp/dbaas-tools".into());
    let p = PathBuf::from(tools).join("playwright-1.65.1/node_modules/playwright-core");
    assert!(
        p.join("package.json").exists(),
        "playwright-core is not installed at {}: run scripts/ensure-deps.sh",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn the_portal_in_a_real_browser() {
    let mut dev = Dev::start(&[
        ("DBAAS_REAPER_INTERVAL_MS", "500"),
        ("DBAAS_DRIFT_INTERVAL_MS", "1000"),
        ("DBAAS_METRICS_INTERVAL_MS", "1000"),
    ])
    .await;
    let mut tokens = Vec::new();
    for t in ["team-a", "team-b"] {
        dev.admin.create_tenant(&CreateTenant { name: t.into(), max_databases: None }).await.unwrap();
        let tok = dev.admin.create_token(&CreateToken { tenant: Some(t.into()), ..Default::default() }).await.unwrap();
        tokens.push(tok.secret);
    }
    let b = dev.admin.with_token(&tokens[1]);
    let acc = b.create_database(&CreateDatabase { instance: Some("local".into()), ..db_req("secret") }).await.unwrap();
    let op = b.wait_operation(acc.operation.unwrap().id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/portal-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/portal.mjs");
    let out = tokio::task::spawn_blocking({
        let (endpoint, admin, tenant) = (dev.endpoint.clone(), dev.token.clone(), tokens[0].clone());
        let other = acc.database.id.to_string();
        let shots = shots.clone();
        move || {
            Command::new("node")
                .arg(script)
                .env("PORTAL_URL", endpoint)
                .env("ADMIN_TOKEN", admin)
                .env("TENANT_TOKEN", tenant)
                .env("OTHER_DB_ID", other)
                .env("SCREENSHOTS", shots)
                .env("PLAYWRIGHT_CORE", playwright_core())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("portal test: all passed"), "{stdout}");
    // Every page the script visited left its screenshot.
    let n = std::fs::read_dir(&shots).unwrap().count();
    assert!(n >= 12, "only {n} screenshots in {}", shots.display());

    revoking_the_token_ends_the_session(&dev).await;
    the_audit_endpoint(&dev, &tokens[0]).await;
    event_streams_are_bounded(&mut dev, &b).await;
}

/// `GET /v1/audit`, which the admin pages show: admins only, filters, stable paging.
async fn the_audit_endpoint(dev: &Dev, tenant_token: &str) {
    let http = reqwest::Client::new();
    let get = |token: String, query: String| {
        let http = http.clone();
        let url = format!("{}/v1/audit?{query}", dev.endpoint);
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = get(tenant_token.into(), String::new()).await;
    assert_eq!(status, 403, "{body}");
    let admin = dev.token.clone();
    // The browser session's creates, by team-a's token, newest first.
    let (status, body) = get(admin.clone(), "tenant=team-a&action=POST%20/v1/databases&limit=1000".into()).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert!(items.len() >= 3, "{body}");
    assert!(items
        .iter()
        .all(|i| i["tenant"] == "team-a" && i["action"].as_str().unwrap().starts_with("POST /v1/databases")));
    let ids: Vec<i64> = items.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "not newest first: {ids:?}");
    // Refused calls are there too, with their status (the CSRF-less posts never reached the
    // API; the bad create did, and was answered 422).
    let (_, bad) = get(admin.clone(), "tenant=team-a&status_code=422".into()).await;
    assert!(!bad["items"].as_array().unwrap().is_empty(), "{bad}");
    // Pages of 2 walk the same rows as one page, without repeats.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = format!(
            "tenant=team-a&action=POST%20/v1/databases&limit=2{}",
            cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default()
        );
        let (status, page) = get(admin.clone(), q).await;
        assert_eq!(status, 200, "{page}");
        walked.extend(page["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, ids);
    // `%` and `_` in the action filter are literal, not wildcards.
    let (_, none) = get(admin.clone(), "action=%25".into()).await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0, "{none}");
    // Bad filters are 422 problems naming the field.
    let (status, p) = get(admin.clone(), "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z".into()).await;
    assert_eq!((status, p["errors"][0]["field"].as_str()), (422, Some("until")), "{p}");
    let (status, _) = get(admin, "limit=0".into()).await;
    assert_eq!(status, 422);
}

/// Signs in with `token` as a browser would (login form, its CSRF cookie); the session cookie.
/// A session is only as good as its token: revoked, the next page is the sign-in page.
async fn revoking_the_token_ends_the_session(dev: &Dev) {
    let tok =
        dev.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let session = sign_in(&dev.endpoint, &tok.secret).await;
    assert_eq!(portal_get(&dev.endpoint, &session, "/portal/databases").await.status(), 200);
    // A second cookie of the session's name (planted by another site) makes no session of
    // either: whichever the browser sends first.
    let planted = sign_in(&dev.endpoint, &tok.secret).await;
    for pair in [
        format!("dbaas_portal={session}; dbaas_portal={planted}"),
        format!("dbaas_portal={planted}; dbaas_portal={session}"),
    ] {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r = http.get(format!("{}/portal/databases", dev.endpoint)).header("cookie", pair).send().await.unwrap();
        assert_eq!(r.status(), 303, "two session cookies were taken as a session");
    }
    // The session cookie is no credential for the API itself.
    assert_eq!(portal_get(&dev.endpoint, &session, "/v1/databases").await.status(), 401);
    dev.admin.revoke_token(tok.token.id).await.unwrap();
    let after = portal_get(&dev.endpoint, &session, "/portal/databases").await;
    assert_eq!(after.status(), 303);
    assert!(after.headers()["location"].to_str().unwrap().starts_with("/portal/login?next="), "{after:?}");
}

/// Live views are bounded: a few per session, they end when the session's token is revoked,
/// and they do not hold the process open at SIGTERM.
async fn event_streams_are_bounded(dev: &mut Dev, other_tenant: &Client) {
    let tok =
        dev.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let session = sign_in(&dev.endpoint, &tok.secret).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let r = portal_get(&dev.endpoint, &session, "/portal/operations/events").await;
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    assert_eq!(portal_get(&dev.endpoint, &session, "/portal/operations/events").await.status(), 429);
    // One operation's log stream polls too: it takes a place like the feed.
    let a = dev.admin.with_token(&tok.secret);
    let acc =
        a.create_database(&CreateDatabase { instance: Some("local".into()), ..db_req("streamed") }).await.unwrap();
    let log_stream = format!("/portal/operations/{}/events", acc.operation.unwrap().id);
    assert_eq!(portal_get(&dev.endpoint, &session, &log_stream).await.status(), 429, "a log stream took no place");
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut feed = portal_get(&dev.endpoint, &session, "/portal/operations/events").await;
    assert_eq!(feed.status(), 200, "a closed stream's place was not given back");
    // Revoked: the stream ends at the next change it would have shown.
    dev.admin.revoke_token(tok.token.id).await.unwrap();
    other_tenant.create_database(&CreateDatabase { instance: Some("local".into()), ..db_req("wake") }).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = feed.chunk().await.unwrap() {
            assert!(!String::from_utf8_lossy(&chunk).contains("wake"), "a revoked session saw an operation");
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream of a revoked session went on");
    // SIGTERM with streams open: the process still exits (streams end at shutdown).
    let admin_session = sign_in(&dev.endpoint, &dev.token).await;
    let _held = portal_get(&dev.endpoint, &admin_session, "/portal/operations/events").await;
    let started = std::time::Instant::now();
    let status = common::dev::sigterm(&mut dev.child);
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "shutdown waited {:?} on an open stream", started.elapsed());
}
