//! Review findings around the API's edges: tokens minted by tokens, `Idempotency-Key`
//! bookkeeping, authorization before body validation, bounded metric labels.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use dbaas_client::*;

#[tokio::test]
async fn tokens_cannot_outlive_their_parent_and_die_with_it() {
    let h = Harness::in_process().await;
    h.admin.create_tenant(&CreateTenant { name: "team-a".into(), max_databases: None }).await.unwrap();
    let req = |ttl: Option<&str>| CreateToken {
        tenant: Some("team-a".into()),
        ttl: ttl.map(str::to_string),
        ..Default::default()
    };
    let parent = h.admin.create_token(&req(Some("1h"))).await.unwrap();
    let a = h.admin.with_token(&parent.secret);
    // Longer than the parent: refused; no ttl: expires with the parent.
    let e = a.create_token(&req(Some("2h"))).await.unwrap_err();
    let p = e.problem().unwrap();
    assert_eq!((p.status, p.errors[0].field.as_str(), p.errors[0].code.as_str()), (422, "ttl", "outlives_parent"));
    let child = a.create_token(&req(None)).await.unwrap();
    assert_eq!(child.token.expires_at, parent.token.expires_at);
    let grandchild = h.admin.with_token(&child.secret).create_token(&req(Some("10m"))).await.unwrap();
    let gc = h.admin.with_token(&grandchild.secret);
    gc.list_databases("").await.unwrap();

    // Revoking the parent revokes what it minted, transitively.
    h.admin.revoke_token(parent.token.id).await.unwrap();
    for secret in [&child.secret, &grandchild.secret] {
        let e = h.admin.with_token(secret).list_databases("").await.unwrap_err();
        assert_eq!(e.status(), Some(401), "{e}");
    }
    // A fresh tenant token cannot revoke tokens of other tenants, nor mint for them.
    let other = h.tenant("team-b").await;
    let e = other.create_token(&req(None)).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
}

#[tokio::test]
async fn a_tenant_holds_at_most_fifty_tokens() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await; // its first token
    for _ in 0..49 {
        a.create_token(&CreateToken::default()).await.unwrap();
    }
    let e = a.create_token(&CreateToken::default()).await.unwrap_err();
    assert_eq!(e.problem().unwrap().code, "quota_exceeded");
}

#[tokio::test]
async fn idempotency_keys_authenticate_first_and_keep_answers_sealed() {
    let h = Harness::in_process().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/tokens", h.endpoint());
    // Unauthenticated: 401 and nothing reserved.
    let r = http.post(&url).header("Idempotency-Key", "k1").json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(&url)
        .bearer_auth("dbaas_not-a-token")
        .header("Idempotency-Key", "k1")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(h.count("SELECT count(*) FROM idempotency_keys").await, 0);

    // A token minted with a key: the stored answer holds the secret, so it is sealed.
    h.admin.create_tenant(&CreateTenant { name: "team-a".into(), max_databases: None }).await.unwrap();
    let minter =
        h.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let mint = || {
        http.post(&url)
            .bearer_auth(&minter.secret)
            .header("Idempotency-Key", "mint-1")
            .json(&serde_json::json!({"description": "ci"}))
            .send()
    };
    let first: CreatedToken = mint().await.unwrap().json().await.unwrap();
    let replay = mint().await.unwrap();
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    let replay: CreatedToken = replay.json().await.unwrap();
    assert_eq!(replay.secret, first.secret);
    let mut st = h.state_db().await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT response FROM idempotency_keys WHERE key = 'mint-1'")
        .fetch_one(&mut st)
        .await
        .unwrap();
    let needle = first.secret.as_bytes();
    assert!(!stored.windows(needle.len()).any(|w| w == needle), "the secret is stored in plain text");

    // The caller is checked on every replay: once revoked, no stored answer comes back.
    h.admin.revoke_token(minter.token.id).await.unwrap();
    assert_eq!(mint().await.unwrap().status(), 401);

    // Expired keys are new keys.
    let other =
        h.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let send = |desc: &'static str| {
        http.post(&url)
            .bearer_auth(&other.secret)
            .header("Idempotency-Key", "old")
            .json(&serde_json::json!({ "description": desc }))
            .send()
    };
    assert_eq!(send("a").await.unwrap().status(), 201);
    sqlx::raw_sql("UPDATE idempotency_keys SET created_at = now() - interval '2 days' WHERE key = 'old'")
        .execute(&mut st)
        .await
        .unwrap();
    assert_eq!(send("b").await.unwrap().status(), 201, "an expired key must not refuse a new request");
}

#[tokio::test]
async fn admin_routes_refuse_tenants_before_reading_the_body() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    for path in ["/v1/instances", "/v1/hosts", "/v1/tenants"] {
        let e = a
            .send::<_, serde_json::Value>(
                reqwest::Method::POST,
                path,
                Some(&serde_json::json!({"bogus": 1})),
                &[],
                None,
            )
            .await
            .unwrap_err();
        let p = e.problem().unwrap();
        assert_eq!(p.status, 403, "{path}: {p:?}");
        assert!(p.errors.is_empty(), "{path}: {p:?}");
        for hint in ["bogus", "unknown field", "missing field", "name", "expected"] {
            assert!(!p.detail.contains(hint), "{path}: the detail gives the schema away: {}", p.detail);
        }
    }
}

#[tokio::test]
async fn unknown_http_methods_share_one_metric_label() {
    let h = Harness::in_process().await;
    let http = reqwest::Client::new();
    for i in 0..20 {
        let m = reqwest::Method::from_bytes(format!("BOGUS{i}").as_bytes()).unwrap();
        http.request(m, format!("{}/healthz", h.endpoint())).send().await.unwrap();
    }
    let metrics = http.get(format!("{}/metrics", h.endpoint())).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("BOGUS"), "a series per bogus method");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

fn local_host_req(name: &str, root: &str) -> CreateHost {
    common::hosts::local_req(name, root, [6000, 6099])
}

/// Registration used to `mkdir -p` and `chown postgres` whatever path it was given.
#[tokio::test(flavor = "multi_thread")]
async fn data_roots_are_new_empty_or_ours_never_system_directories() {
    let h = Harness::in_process().await;
    for root in ["/", "/etc", "/usr/lib/x", "/var", "/home", "/root/pg", "/tmp"] {
        let p = h.admin.create_host(&local_host_req("h1", root)).await.unwrap_err().problem().cloned().unwrap();
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, "data_root"), "{root}: {p:?}");
    }
    // A directory holding something else, and a symlink: refused, left as they were.
    let busy = h.dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let link = h.dir.path().join("link");
    std::os::unix::fs::symlink(&busy, &link).unwrap();
    for root in [&busy, &link] {
        let e = h.admin.create_host(&local_host_req("h1", root.to_str().unwrap())).await.unwrap_err();
        let p = e.problem().unwrap();
        assert_eq!((p.status, p.errors[0].code.as_str()), (422, "unusable"), "{root:?}: {p:?}");
    }
    let meta = std::fs::metadata(&busy).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), nix::unistd::geteuid().as_raw(), "busy was chowned");
    // An empty directory is taken and marked; registering it again (after a delete) works.
    let empty = h.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    h.admin.create_host(&local_host_req("h1", empty.to_str().unwrap())).await.unwrap();
    assert!(empty.join(".dbaas-data-root").exists());
    h.admin.delete_host("h1").await.unwrap();
    std::fs::write(empty.join("leftover"), "x").unwrap();
    h.admin.create_host(&local_host_req("h1", empty.to_str().unwrap())).await.unwrap();
    assert_eq!(h.count("SELECT count(*) FROM hosts").await, 1);
}

#[tokio::test]
async fn tenants_see_a_reduced_instance_view() {
    let h = Harness::in_process().await;
    h.admin.create_tenant(&CreateTenant { name: "team-b".into(), max_databases: None }).await.unwrap();
    let theirs = CreateInstance { dedicated_tenant: Some("team-b".into()), ..instance_req(&h.target_pg, "b-only") };
    h.admin.create_instance(&theirs).await.unwrap();
    let a = h.tenant("team-a").await;
    let listed = a.list_instances().await.unwrap();
    assert_eq!(listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), vec!["main"]);
    let main = a.get_instance("main").await.unwrap();
    assert_eq!(main.admin_user, "");
    assert_eq!(main.host, main.public_host);
    assert!(main.managed.is_none() && main.last_operation_id.is_none());
    assert_eq!(a.get_instance("b-only").await.unwrap_err().status(), Some(404));
    // Naming it for a database is answered exactly as naming no instance at all (apart from
    // the name itself): nothing confirms it exists.
    let answer = |name: &'static str| {
        let a = a.clone();
        let req = CreateDatabase { instance: Some(name.into()), ..db_req("x") };
        async move {
            let p = a.create_database(&req).await.unwrap_err().problem().cloned().unwrap();
            (
                p.status,
                p.code,
                p.errors[0].field.clone(),
                p.errors[0].code.clone(),
                p.errors[0].message.replace(name, "<name>"),
            )
        }
    };
    assert_eq!(answer("b-only").await, answer("no-such").await);
    // Admins see it all.
    let full = h.admin.get_instance("main").await.unwrap();
    assert_eq!(full.admin_user, "postgres");
    assert_eq!(h.admin.list_instances().await.unwrap().len(), 2);
}

/// External instances: a CA means verify-full by default; no TLS is refused off-machine; an
/// MD5-stored admin password is refused.
#[tokio::test]
async fn external_instances_are_reached_safely() {
    let h = Harness::in_process().await;
    let with_ca = CreateInstance {
        sslmode: SslMode::Prefer,
        ca_cert: h.target_pg.ca_cert.clone(),
        ..instance_req(&h.target_pg, "ca-given")
    };
    assert_eq!(h.admin.create_instance(&with_ca).await.unwrap().sslmode, SslMode::VerifyFull);
    let far = CreateInstance {
        sslmode: SslMode::Disable,
        ..CreateInstance::external("far", "db.example.net", 5432, "postgres", "x", Environment::Sandbox)
    };
    let p = h.admin.create_instance(&far).await.unwrap_err().problem().cloned().unwrap();
    assert_eq!((p.errors[0].field.as_str(), p.errors[0].code.as_str()), ("sslmode", "insecure"));

    let mut su = h.target_db("postgres").await;
    sqlx::raw_sql(
        "SET password_encryption = 'md5'; CREATE ROLE legacy LOGIN SUPERUSER PASSWORD 'legacy-pass'; \
         RESET password_encryption",
    )
    .execute(&mut su)
    .await
    .unwrap();
    // An instance whose pg_hba.conf still says md5 for this login.
    let hba: String = sqlx::query_scalar("SHOW hba_file").fetch_one(&mut su).await.unwrap();
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("hostssl all legacy 127.0.0.1/32 md5\n{rules}")).unwrap();
    sqlx::raw_sql("SELECT pg_reload_conf()").execute(&mut su).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let md5 = CreateInstance {
        ..CreateInstance::external("md5", "127.0.0.1", h.target_pg.port, "legacy", "legacy-pass", Environment::Sandbox)
    };
    let md5 = CreateInstance { sslmode: SslMode::Require, ..md5 };
    let e = h.admin.create_instance(&md5).await.unwrap_err();
    let p = e.problem().unwrap();
    assert_eq!(p.errors.first().map(|f| f.code.as_str()), Some("md5_password"), "{p:?}");
}

/// Any token with an expiry (an admin's too) bounds what it mints; a revocation racing with
/// mints still reaches every token minted from the revoked one.
#[tokio::test(flavor = "multi_thread")]
async fn expiring_tokens_bound_their_children_even_under_concurrent_minting() {
    let h = Harness::in_process().await;
    let ttl = |t: &str| CreateToken { ttl: Some(t.into()), ..Default::default() };
    let temp_admin = h.admin.create_token(&ttl("1h")).await.unwrap();
    let e = h.admin.with_token(&temp_admin.secret).create_token(&ttl("2h")).await.unwrap_err();
    let p = e.problem().unwrap();
    assert_eq!((p.status, p.errors[0].field.as_str(), p.errors[0].code.as_str()), (422, "ttl", "outlives_parent"));

    h.admin.create_tenant(&CreateTenant { name: "team-a".into(), max_databases: None }).await.unwrap();
    let parent =
        h.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let minter = h.admin.with_token(&parent.secret);
    let mut mints = Vec::new();
    for _ in 0..40 {
        let c = minter.clone();
        mints.push(tokio::spawn(async move { c.create_token(&CreateToken::default()).await }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    h.admin.revoke_token(parent.token.id).await.unwrap();
    for m in mints {
        let _ = m.await.unwrap(); // minted, 401 or quota: what matters is what is left alive
    }
    let alive = h
        .count(&format!(
            "WITH RECURSIVE tree AS (SELECT id FROM tokens WHERE id = '{}' \
             UNION SELECT k.id FROM tokens k JOIN tree ON k.parent_id = tree.id) \
             SELECT count(*) FROM tokens WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL",
            parent.token.id
        ))
        .await;
    assert_eq!(alive, 0, "tokens minted from a revoked token are still valid");
}

/// A marker file alone does not make a directory ours, and a symbolic link higher up the
/// path cannot steer registration into a system tree.
#[tokio::test(flavor = "multi_thread")]
async fn data_roots_marked_by_someone_else_or_behind_links_are_refused() {
    let h = Harness::in_process().await;
    let unusable = |p: &Problem| (p.status, p.errors[0].field.clone(), p.errors[0].code.clone());
    // As root, clusters run as postgres: a marked directory root (or anyone else) owns is not ours.
    if nix::unistd::geteuid().is_root() {
        let planted = h.dir.path().join("planted");
        std::fs::create_dir_all(&planted).unwrap();
        std::fs::write(planted.join(".dbaas-data-root"), "").unwrap();
        let e = h.admin.create_host(&local_host_req("h1", planted.to_str().unwrap())).await.unwrap_err();
        assert_eq!(unusable(e.problem().unwrap()), (422, "data_root".into(), "unusable".into()), "{e}");
        let meta = std::fs::metadata(&planted).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0, "planted was chowned");
    }

    let link = h.dir.path().join("ul");
    std::os::unix::fs::symlink("/usr/local", &link).unwrap();
    let name = format!("dbaas-hardening-{}", std::process::id());
    let e = h.admin.create_host(&local_host_req("h1", link.join(&name).to_str().unwrap())).await.unwrap_err();
    let made = std::path::Path::new("/usr/local").join(&name);
    let was_made = made.exists();
    let _ = std::fs::remove_dir_all(&made);
    assert_eq!(unusable(e.problem().unwrap()), (422, "data_root".into(), "unusable".into()), "{e}");
    assert!(!was_made, "a directory was made in /usr/local through the link");
    assert_eq!(h.count("SELECT count(*) FROM hosts").await, 0);
}

/// `dev` refuses a data dir it does not own (the default is in /var/tmp, where anyone can
/// create it first) or reaches through a link, before writing any secret there.
#[tokio::test(flavor = "multi_thread")]
async fn dev_refuses_a_data_dir_that_is_not_its_own() {
    let tmp = tempdir();
    let real = tmp.path().join("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut cases = vec![(link, real.clone())];
    if nix::unistd::geteuid().is_root() {
        let theirs = tmp.path().join("theirs");
        std::fs::create_dir_all(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        cases.push((theirs.clone(), theirs));
    }
    for (dir, holds) in cases {
        let port = dbaas_api::pgcluster::free_port().unwrap();
        let mut child = std::process::Command::new(BIN)
            .args(["dev", "--data-dir"])
            .arg(&dir)
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        if status.is_none() {
            // Started anyway: stop it (and its clusters) before failing.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        assert!(status.is_some_and(|s| !s.success()), "dev accepted {dir:?}");
        assert!(!holds.join("master.key").exists() && !holds.join("env").exists(), "secrets written in {holds:?}");
    }
}

/// Not even JSON, or no content type at all: a tenant on an admin-only route still learns
/// only that it is not allowed (the body is never looked at).
#[tokio::test]
async fn admin_routes_refuse_tenants_whatever_the_body() {
    let h = Harness::in_process().await;
    h.admin.create_tenant(&CreateTenant { name: "team-a".into(), max_databases: None }).await.unwrap();
    let tok = h.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let http = reqwest::Client::new();
    let routes = [
        (reqwest::Method::POST, "/v1/instances"),
        (reqwest::Method::POST, "/v1/hosts"),
        (reqwest::Method::POST, "/v1/tenants"),
        (reqwest::Method::PATCH, "/v1/instances/main"),
        (reqwest::Method::PUT, "/v1/instances/main/maintenance-window"),
        (reqwest::Method::POST, "/v1/instances/main/actions"),
        (reqwest::Method::PATCH, "/v1/tenants/team-a"),
    ];
    for (method, path) in routes {
        for (ctype, body) in [(Some("application/json"), "{{{ not json"), (None, "garbage"), (Some("text/plain"), "")] {
            let mut req = http.request(method.clone(), format!("{}{path}", h.endpoint())).bearer_auth(&tok.secret);
            if let Some(c) = ctype {
                req = req.header("content-type", c);
            }
            let r = req.body(body).send().await.unwrap();
            assert_eq!(r.status(), 403, "{method} {path} {ctype:?}");
            let p: Problem = r.json().await.unwrap();
            assert!(p.errors.is_empty(), "{method} {path}: {p:?}");
            for hint in ["JSON", "json", "Content-Type", "expected", "line", "column"] {
                assert!(!p.detail.contains(hint), "{method} {path}: the detail says how to parse: {}", p.detail);
            }
        }
    }
}

/// What schemathesis found: list filters outside their enum answered 200 with everything,
/// a struct was read from a JSON array, a NUL byte reached PostgreSQL (500), and axum's own
/// rejections (a path id that is not a UUID) were plain text. Each is a problem now.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_problems_naming_what_is_wrong() {
    let h = Harness::in_process().await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<&str>| {
        let mut req = http.request(method, format!("{}{path}", h.endpoint())).bearer_auth(&h.admin_token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        req.send()
    };
    let problem = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(ct, "application/problem+json", "status {status}");
        (status, resp.json::<Problem>().await.unwrap())
    };
    let fields = |p: &Problem| p.errors.iter().map(|e| e.field.clone()).collect::<Vec<_>>();

    let (status, p) = problem(call(reqwest::Method::GET, "/v1/databases?environment=junk", None).await.unwrap()).await;
    assert_eq!((status, fields(&p)), (422, vec!["environment".to_string()]));
    let (status, p) =
        problem(call(reqwest::Method::GET, "/v1/operations?status=junk&kind=junk", None).await.unwrap()).await;
    assert_eq!((status, fields(&p)), (422, vec!["status".to_string(), "kind".to_string()]));
    // A valid filter still works.
    let ok = call(reqwest::Method::GET, "/v1/databases?environment=prod", None).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    h.admin.create_tenant(&CreateTenant { name: "t1".into(), max_databases: None }).await.unwrap();
    let (status, p) =
        problem(call(reqwest::Method::PATCH, "/v1/tenants/t1", Some("[null, null]")).await.unwrap()).await;
    assert_eq!((status, p.code.as_str()), (422, "invalid_body"));
    let (status, p) =
        problem(call(reqwest::Method::POST, "/v1/tenants", Some(r#"{"name": "a\u0000b"}"#)).await.unwrap()).await;
    assert_eq!((status, fields(&p)), (422, vec!["name".to_string()]));
    let (status, _) = problem(call(reqwest::Method::GET, "/v1/instances/a%00b", None).await.unwrap()).await;
    assert_eq!(status, 400);
    let (status, p) = problem(call(reqwest::Method::GET, "/v1/databases/not-a-uuid", None).await.unwrap()).await;
    assert_eq!(status, 400, "{p:?}");
    assert!(p.detail.contains("UUID"), "{p:?}");
    assert!(h.admin.list_tenants().await.unwrap().iter().all(|t| t.name != "a\0b"));
}

/// Request ids are the server's: one a client sends is replaced, in the answer and in the
/// audit log, so nobody writes their own text into the audit trail or poses as another request.
#[tokio::test]
async fn a_client_cannot_choose_its_request_id() {
    let h = Harness::in_process().await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/v1/tenants", h.endpoint()))
        .bearer_auth(&h.admin_token)
        .header("x-request-id", "forged-id")
        .json(&serde_json::json!({"name": "team-r"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a server-made id: {id}");
    let audit: serde_json::Value = http
        .get(format!("{}/v1/audit?action=POST", h.endpoint()))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|e| e["request_id"].as_str()).collect();
    assert!(ids.contains(&id.as_str()), "{audit}");
    assert!(!ids.contains(&"forged-id"), "{audit}");
}
