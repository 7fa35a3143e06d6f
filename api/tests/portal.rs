//! The web portal in a real browser: headless Chromium (Debian's) driven by playwright-core
//! through `tests/browser/portal.mjs`, against a `dbaas-api dev` process. This test makes
//! the tenants (team-a signs in; team-b owns a database team-a must not see), runs the
//! script, and fails with its output when any of its expectations fails. Screenshots of
//! every page land in `target/portal-screenshots/`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::dev::Dev;
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
    let dev = Dev::start(&[("DBAAS_REAPER_INTERVAL_MS", "500"), ("DBAAS_DRIFT_INTERVAL_MS", "1000")]).await;
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
}

/// A session is only as good as its token: revoked, the next page is the sign-in page.
async fn revoking_the_token_ends_the_session(dev: &Dev) {
    let tok =
        dev.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = http.get(format!("{}/portal/login", dev.endpoint)).send().await.unwrap();
    let login_cookie = cookie(&login, "dbaas_portal_login");
    let page = login.text().await.unwrap();
    let csrf = page.split("name=\"_csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let signed_in = http
        .post(format!("{}/portal/login", dev.endpoint))
        .header("cookie", format!("dbaas_portal_login={login_cookie}"))
        .form(&[("_csrf", csrf.as_str()), ("token", tok.secret.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = cookie(&signed_in, "dbaas_portal");
    let get = || async {
        http.get(format!("{}/portal/databases", dev.endpoint))
            .header("cookie", format!("dbaas_portal={session}"))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(get().await.status(), 200);
    // The session cookie is no credential for the API itself.
    let api = http
        .get(format!("{}/v1/databases", dev.endpoint))
        .header("cookie", format!("dbaas_portal={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    dev.admin.revoke_token(tok.token.id).await.unwrap();
    let after = get().await;
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()["location"], "/portal/login");
}

fn cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_string()))
        .unwrap_or_else(|| panic!("no {name} cookie"))
}
