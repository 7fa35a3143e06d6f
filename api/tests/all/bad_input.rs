//! Every bad input named in the API issue: a clear 4xx (or a clear operation status), and
//! nothing created or half-made.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use dbaas_client::*;
use reqwest::Method;

fn problem(e: &ClientError) -> &Problem {
    e.problem().unwrap_or_else(|| panic!("expected a problem document, got {e}"))
}

/// Nothing of tenant `team-a` exists: no database rows, operations, credentials, roles.
async fn nothing_made(h: &Harness) {
    assert_eq!(h.count("SELECT count(*) FROM databases WHERE name NOT LIKE 'yyy%'").await, 0);
    assert_eq!(
        h.count(
            "SELECT count(*) FROM operations o JOIN databases d ON d.id = o.target_id WHERE d.name NOT LIKE 'yyy%'"
        )
        .await,
        0
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM credentials c JOIN databases d ON d.id = c.database_id WHERE d.name NOT LIKE 'yyy%'"
        )
        .await,
        0
    );
    assert!(h.target_roles_like("team-a_%").await.iter().all(|r| r.starts_with("team-a_yyy")));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_names_and_references() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;

    let too_long = "x".repeat(42); // "team-a_" + 42 + "_admin_" + 8 = 64 > 63
    h.ready_database(&a, db_req(&"y".repeat(41))).await; // exactly 63: accepted
    for name in ["a\"b", "a;drop database x", "a b", "Orders", "ünïcode", "1abc", "-x", "a'b", "", too_long.as_str()]
    {
        let e = a.create_database(&db_req(name)).await.unwrap_err();
        let p = problem(&e);
        assert_eq!((p.status, p.code.as_str()), (422, "validation_failed"), "{name:?}: {p:?}");
        assert_eq!(p.errors[0].field, "name", "{name:?}");
        assert!(!p.errors[0].message.is_empty());
        assert!(e.problem().unwrap().type_.starts_with("https://"));
    }
    let e = a.create_database(&db_req(&too_long)).await.unwrap_err();
    assert!(problem(&e).errors[0].message.contains("63"), "{e}");

    // Unknown instance.
    let mut req = db_req("orders");
    req.instance = Some("nowhere".into());
    let p = problem(&a.create_database(&req).await.unwrap_err()).clone();
    assert_eq!(
        (p.status, p.errors[0].field.as_str(), p.errors[0].code.as_str()),
        (422, "instance", "unknown_instance")
    );

    // instance and placement together, or neither.
    let mut req = db_req("orders");
    req.placement = Some(Placement { environment: Some(Environment::Sandbox), labels: BTreeMap::new() });
    assert_eq!(problem(&a.create_database(&req).await.unwrap_err()).errors[0].field, "placement");
    let req = CreateDatabase { name: "orders".into(), ..Default::default() };
    assert_eq!(problem(&a.create_database(&req).await.unwrap_err()).errors[0].field, "instance");
    // A placement nothing matches.
    let req = CreateDatabase {
        name: "orders".into(),
        placement: Some(Placement { environment: Some(Environment::Prod), labels: BTreeMap::new() }),
        ..Default::default()
    };
    assert_eq!(problem(&a.create_database(&req).await.unwrap_err()).code, "no_matching_instance");

    // Extension not allowed on the instance.
    let mut req = db_req("orders");
    req.extensions = vec!["pgcrypto".into(), "plpython3u".into()];
    let p = problem(&a.create_database(&req).await.unwrap_err()).clone();
    assert_eq!((p.status, p.errors.len()), (422, 1), "{p:?}");
    assert_eq!((p.errors[0].field.as_str(), p.errors[0].code.as_str()), ("extensions[1]", "extension_not_allowed"));

    // A bad connection limit.
    let mut req = db_req("orders");
    req.connection_limit = Some(-5);
    assert_eq!(problem(&a.create_database(&req).await.unwrap_err()).errors[0].field, "connection_limit");

    // Malformed JSON, wrong types, unknown fields: 400 / 422, never a 500.
    for (body, status, code) in [
        ("{\"name\": ", 400, "malformed_json"),
        ("{\"name\": 5}", 422, "invalid_body"),
        ("{\"name\": \"x\", \"instance\": \"main\", \"sneaky\": 1}", 422, "invalid_body"),
        ("[]", 422, "invalid_body"),
    ] {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/databases", h.endpoint()))
            .bearer_auth(&h.admin_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let p: Problem = resp.json().await.unwrap();
        assert_eq!(p.code, code, "{body}");
    }
    nothing_made(&h).await;
    assert!(!h.target_has_db("team-a_orders").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_quota_and_ttl() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    // A second registration of the same server with room for one database.
    h.admin.create_instance(&CreateInstance { max_databases: 1, ..instance_req(&h.target_pg, "tiny") }).await.unwrap();
    let mut req = db_req("first");
    req.instance = Some("tiny".into());
    let first = h.ready_database(&a, req.clone()).await;
    req.name = "second".into();
    let p = problem(&a.create_database(&req).await.unwrap_err()).clone();
    assert_eq!((p.status, p.code.as_str()), (409, "instance_full"), "{p:?}");
    assert_eq!(h.count("SELECT count(*) FROM databases").await, 1);
    assert!(!h.target_has_db("team-a_second").await);

    // Tenant quota.
    h.admin
        .send::<_, Tenant>(
            Method::PATCH,
            "/v1/tenants/team-a",
            Some(&UpdateTenant { max_databases: Some(1), version: None }),
            &[],
            None,
        )
        .await
        .unwrap();
    let p = problem(&a.create_database(&db_req("third")).await.unwrap_err()).clone();
    assert_eq!((p.status, p.code.as_str()), (409, "quota_exceeded"));

    // Invalid lease TTLs.
    for ttl in ["0s", "-5m", "abc", "31d", "5s", "1.5h", ""] {
        let e = a.create_lease(first.id, &CreateLease { access: Access::Read, ttl: ttl.into() }).await.unwrap_err();
        let p = problem(&e);
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, "ttl"), "{ttl:?}: {p:?}");
    }
    assert_eq!(h.count("SELECT count(*) FROM credentials WHERE kind = 'lease'").await, 0);
    // Unknown access level in the path.
    let e = a
        .send::<(), Credential>(Method::GET, &format!("/v1/databases/{}/credentials/root", first.id), None, &[], None)
        .await
        .unwrap_err();
    assert_eq!(problem(&e).errors[0].field, "access");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_tenancy() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let _b = h.tenant("team-b").await;

    // Missing, wrong, expired, revoked tokens.
    let anon = reqwest::Client::new().get(format!("{}/v1/databases", h.endpoint())).send().await.unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    assert_eq!(anon.json::<Problem>().await.unwrap().code, "unauthenticated");
    let wrong = h.admin.with_token("dbaas_not-a-real-token");
    assert_eq!(problem(&wrong.list_databases("").await.unwrap_err()).code, "invalid_token");

    let expiring =
        h.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let mut c = h.state_db().await;
    sqlx::query("UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(expiring.token.id)
        .execute(&mut c)
        .await
        .unwrap();
    let e = h.admin.with_token(&expiring.secret).list_databases("").await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).code.as_str()), (401, "token_expired"));

    let revoked =
        h.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let rc = h.admin.with_token(&revoked.secret);
    rc.list_databases("").await.unwrap();
    h.admin.revoke_token(revoked.token.id).await.unwrap();
    let e = rc.list_databases("").await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).code.as_str()), (401, "token_revoked"));
    let e = rc.create_database(&db_req("orders")).await.unwrap_err();
    assert_eq!(problem(&e).status, 401);

    // A tenant token touching another tenant sees nothing there.
    let mut req = db_req("orders");
    req.tenant = Some("team-b".into());
    assert_eq!(problem(&a.create_database(&req).await.unwrap_err()).status, 404);
    let e = a.create_token(&CreateToken { tenant: Some("team-b".into()), ..Default::default() }).await.unwrap_err();
    assert_eq!(problem(&e).status, 404);
    let e = a.list_databases("tenant=team-b").await.unwrap_err();
    assert_eq!(problem(&e).status, 404);
    assert_eq!(a.list_tenants().await.unwrap().len(), 1);
    // Admin-only actions are 403 for tenants.
    let e = a.create_tenant(&CreateTenant { name: "team-c".into(), max_databases: None }).await.unwrap_err();
    assert_eq!(problem(&e).status, 403);
    // The admin must name a tenant.
    let e = h.admin.create_database(&db_req("orders")).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].field, "tenant");
    nothing_made(&h).await;

    // Bad tenant names.
    for name in ["Team", "a_b", "x".repeat(21).as_str(), "9lives"] {
        let e = h.admin.create_tenant(&CreateTenant { name: name.into(), max_databases: None }).await.unwrap_err();
        assert_eq!(problem(&e).errors[0].field, "name", "{name}");
    }
    let e = h.admin.create_tenant(&CreateTenant { name: "team-a".into(), max_databases: None }).await.unwrap_err();
    assert_eq!(problem(&e).status, 409);

    // The audit log names the actor of every mutating call, refused ones included.
    let audited = h.count("SELECT count(*) FROM audit_log WHERE action = 'POST /v1/databases' AND status_code = 404 AND actor LIKE 'tenant-token:team-a:%'").await;
    assert_eq!(audited, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_patch_changes_nothing() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("orders")).await;
    let ops_before = h.count("SELECT count(*) FROM operations").await;

    let stale = UpdateDatabase { version: Some(db.version + 7), connection_limit: Some(5), ..Default::default() };
    let e = a.update_database(db.id, &stale).await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).code.as_str()), (409, "version_conflict"));
    let e = a
        .send::<_, DatabaseAccepted>(
            Method::PATCH,
            &format!("/v1/databases/{}", db.id),
            Some(&UpdateDatabase { connection_limit: Some(5), ..Default::default() }),
            &[("If-Match", "\"999\"".into())],
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(problem(&e).status, 412);
    let after = a.get_database(db.id).await.unwrap();
    assert_eq!((after.connection_limit, after.version), (-1, db.version));
    assert_eq!(h.count("SELECT count(*) FROM operations").await, ops_before);

    // With the right version it applies, in place on the instance.
    let ok = a
        .update_database(
            db.id,
            &UpdateDatabase {
                version: Some(db.version),
                connection_limit: Some(5),
                extensions: Some(vec!["citext".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let op = a.wait_operation(ok.operation.unwrap().id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let mut c = h.target_db("postgres").await;
    let limit: i32 = sqlx::query_scalar("SELECT datconnlimit FROM pg_database WHERE datname = 'team-a_orders'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(limit, 5);
    let mut c = h.target_db("team-a_orders").await;
    let exts: Vec<String> =
        sqlx::query_scalar("SELECT extname::text FROM pg_extension ORDER BY 1").fetch_all(&mut c).await.unwrap();
    assert!(exts.contains(&"citext".to_string()), "{exts:?}");
    let clean = a.get_database_fresh(db.id).await.unwrap();
    assert!(clean.drift.as_ref().unwrap().is_clean(), "{:?}", clean.drift);
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_registration_and_target_down() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let base = instance_req(&h.target_pg, "other");
    // Wrong password, nothing listening, a login without the needed privileges.
    let e = h
        .admin
        .create_instance(&CreateInstance { admin_password: Some("wrong".into()), ..base.clone() })
        .await
        .unwrap_err();
    assert_eq!(problem(&e).code, "instance_unreachable", "{e}");
    assert!(problem(&e).detail.contains("28P01"), "{e}");
    let dead_port = dbaas_api::pgcluster::free_port().unwrap();
    let e = h.admin.create_instance(&CreateInstance { port: Some(dead_port), ..base.clone() }).await.unwrap_err();
    assert_eq!(problem(&e).code, "instance_unreachable");
    let mut su = h.target_db("postgres").await;
    sqlx::raw_sql("CREATE ROLE weak LOGIN PASSWORD 'weak-password-1'; GRANT CONNECT ON DATABASE postgres TO weak")
        .execute(&mut su)
        .await
        .unwrap();
    let e = h
        .admin
        .create_instance(&CreateInstance {
            admin_user: Some("weak".into()),
            admin_password: Some("weak-password-1".into()),
            ..base.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(problem(&e).code, "insufficient_privileges");
    assert!(problem(&e).detail.contains("CREATEDB and CREATEROLE"), "{e}");
    let e = h
        .admin
        .create_instance(&CreateInstance { allowed_extensions: vec!["no_such_ext".into()], ..base.clone() })
        .await
        .unwrap_err();
    assert_eq!(problem(&e).errors[0].field, "allowed_extensions[0]");
    // Managed: the host must be a registered host, and external-only fields are refused.
    let e = h.admin.create_instance(&CreateInstance { kind: InstanceKind::Managed, ..base.clone() }).await.unwrap_err();
    let fields: Vec<&str> = problem(&e).errors.iter().map(|f| f.field.as_str()).collect();
    // (The harness's instances carry their CA, as dev's do: a managed one gets its own.)
    assert_eq!(fields, vec!["admin_user", "admin_password", "ca_cert", "host", "version"], "{e}");
    assert_eq!(h.count("SELECT count(*) FROM instances").await, 1);

    // A CREATEDB + CREATEROLE login (not superuser) is enough, and works end to end.
    sqlx::raw_sql("ALTER ROLE weak CREATEDB CREATEROLE").execute(&mut su).await.unwrap();
    h.admin
        .create_instance(&CreateInstance {
            admin_user: Some("weak".into()),
            admin_password: Some("weak-password-1".into()),
            ..base.clone()
        })
        .await
        .unwrap();
    let mut req = db_req("via-weak");
    req.instance = Some("other".into());
    let d = h.ready_database(&a, req).await;
    assert!(a.get_database_fresh(d.id).await.unwrap().drift.unwrap().is_clean());
    let read = a.get_credential(d.id, Access::Read).await.unwrap();
    connect_as(&read).await.unwrap();

    // A target that goes down: the operation reports a retryable error and keeps retrying;
    // the API stays healthy; when the target is back the operation completes.
    let flaky_dir = tempdir();
    let flaky = dbaas_api::pgcluster::Cluster::start(
        flaky_dir.path(),
        &dbaas_api::pgcluster::ClusterOptions { throwaway: true, ..Default::default() },
    )
    .unwrap();
    h.admin
        .create_instance(&CreateInstance {
            name: "flaky".into(),
            port: Some(flaky.port),
            admin_password: Some(flaky.password.clone()),
            sslmode: SslMode::Disable,
            ..base.clone()
        })
        .await
        .unwrap();
    flaky.stop().unwrap();
    let mut req = db_req("on-flaky");
    req.instance = Some("flaky".into());
    let acc = a.create_database(&req).await.unwrap();
    let op_id = acc.operation.unwrap().id;
    wait_until("a retryable error to be recorded", Duration::from_secs(30), || {
        let a = a.clone();
        async move { a.get_operation(op_id).await.unwrap().error.is_some() }
    })
    .await;
    let op = a.get_operation(op_id).await.unwrap();
    let err = op.error.clone().unwrap();
    assert!(err.retryable, "{op:?}");
    assert_eq!(err.code, "connection_refused", "{op:?}");
    assert!(matches!(op.status, OperationStatus::Queued | OperationStatus::Running), "{op:?}");
    let health = reqwest::get(format!("{}/healthz", h.endpoint())).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(reqwest::get(format!("{}/readyz", h.endpoint())).await.unwrap().status().as_u16(), 200);
    assert_eq!(a.get_database(acc.database.id).await.unwrap().status, DatabaseStatus::Provisioning);
    flaky.restart().unwrap();
    let op = a.wait_operation(op_id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert!(op.attempts >= 2, "{op:?}");
    assert_eq!(a.get_database(acc.database.id).await.unwrap().status, DatabaseStatus::Ready);
}
