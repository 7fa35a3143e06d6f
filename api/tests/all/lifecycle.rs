//! Lifecycle: protected delete and re-adoption, forced drop, safe delete, idempotent POST,
//! rotation, drift, cancel, and the service's own endpoints.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::*;
use dbaas_client::*;
use reqwest::Method;
use sqlx::Executor;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn protected_delete_retains_then_readopts_then_force_drops() {
    let h = Harness::start().await;
    let a = h.tenant("team-a").await;
    let mut req = db_req("ledger");
    req.mode = Some(DatabaseMode::Protected);
    let db = h.ready_database(&a, req.clone()).await;
    let admin = a.get_credential(db.id, Access::Admin).await.unwrap();
    let mut c = connect_as(&admin).await.unwrap();
    c.execute("CREATE TABLE entries (id int PRIMARY KEY, amount int); INSERT INTO entries VALUES (1, 100), (2, 250)")
        .await
        .unwrap();
    drop(c);

    // DELETE of a protected database never drops it.
    let del = a.delete_database(db.id, false).await.unwrap();
    assert_eq!(del.database.status, DatabaseStatus::Retained);
    assert!(del.operation.is_none());
    assert!(h.target_has_db("team-a_ledger").await);
    assert_eq!(h.target_roles_like("team-a_ledger_%").await.len(), 3);
    assert_eq!(a.get_database(db.id).await.unwrap().status, DatabaseStatus::Retained);
    // Retained: no longer managed, so no changes through the API; credentials still readable.
    let e = a
        .update_database(db.id, &UpdateDatabase { connection_limit: Some(3), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.problem().unwrap().code, "invalid_state");
    assert_eq!(a.get_credential(db.id, Access::Admin).await.unwrap().password, admin.password);
    // Deleting again is harmless.
    assert_eq!(a.delete_database(db.id, false).await.unwrap().database.status, DatabaseStatus::Retained);

    // Declaring it again re-adopts it, data intact.
    let again = a.create_database(&req).await.unwrap();
    assert_eq!(again.database.id, db.id, "re-adoption keeps the identity");
    let op = a.wait_operation(again.operation.unwrap().id, WAIT).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let mut c = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    let sum: i64 = sqlx::query_scalar("SELECT sum(amount) FROM entries").fetch_one(&mut c).await.unwrap();
    assert_eq!(sum, 350);
    let mut r = connect_as(&a.get_credential(db.id, Access::Read).await.unwrap()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM entries").fetch_one(&mut r).await.unwrap();
    assert_eq!(n, 2);
    drop((c, r));
    assert!(a.get_database_fresh(db.id).await.unwrap().drift.unwrap().is_clean());

    // Re-adoption elsewhere is refused.
    let mut elsewhere = req.clone();
    elsewhere.instance = Some("nowhere".into());
    assert_eq!(a.delete_database(db.id, false).await.unwrap().database.status, DatabaseStatus::Retained);
    assert_eq!(a.create_database(&elsewhere).await.unwrap_err().problem().unwrap().code, "instance_mismatch");

    // Only an admin can force the drop.
    assert_eq!(a.delete_database(db.id, true).await.unwrap_err().status(), Some(403));
    let forced = h.admin.delete_database(db.id, true).await.unwrap();
    let op = h.admin.wait_operation(forced.operation.unwrap().id, WAIT).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert!(!h.target_has_db("team-a_ledger").await);
    assert!(h.target_roles_like("team-a_ledger_%").await.is_empty());
    assert_eq!(a.get_database(db.id).await.unwrap_err().status(), Some(404));
    // The name is free again: a new, empty database.
    let fresh = h.ready_database(&a, req).await;
    assert_ne!(fresh.id, db.id);
    let mut c = connect_as(&a.get_credential(fresh.id, Access::Admin).await.unwrap()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'entries'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn safe_delete_reports_sessions_and_drops_everything() {
    let h = Harness::start().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("shop")).await;
    let lease = a.create_lease(db.id, &CreateLease { access: Access::Write, ttl: "1h".into() }).await.unwrap();
    a.wait_operation(lease.operation.unwrap().id, WAIT).await.unwrap();
    let write = a.get_credential(db.id, Access::Write).await.unwrap();
    let opts: sqlx::postgres::PgConnectOptions = write.uri.parse().unwrap();
    let mut session: sqlx::PgConnection =
        sqlx::Connection::connect_with(&opts.application_name("billing-worker")).await.unwrap();

    let del = a
        .send::<(), DatabaseAccepted>(Method::DELETE, &format!("/v1/databases/{}?grace=1s", db.id), None, &[], None)
        .await
        .unwrap();
    assert_eq!(del.status, 202);
    assert_eq!(del.body.database.status, DatabaseStatus::Deleting);
    let op_id = del.body.operation.unwrap().id;
    // A second DELETE answers with the same operation.
    let again = a.delete_database(db.id, false).await;
    if let Ok(again) = again {
        assert_eq!(again.operation.map(|o| o.id), Some(op_id));
    }
    let op = a.wait_operation(op_id, WAIT).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let logs = a.operation_logs(op_id).await.unwrap();
    let text: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
    assert!(text.iter().any(|m| m.contains("billing-worker")), "{text:#?}");
    assert!(text.iter().any(|m| m.contains("terminated 1 session")), "{text:#?}");
    let order: Vec<usize> = ["step 1/4", "step 2/4", "step 3/4", "step 4/4"]
        .iter()
        .map(|s| text.iter().position(|m| m.starts_with(s)).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text:#?}");
    assert!(sqlx::query("SELECT 1").execute(&mut session).await.is_err(), "the session must be gone");
    assert!(!h.target_has_db("team-a_shop").await);
    assert!(h.target_roles_like("team-a_shop%").await.is_empty(), "roles and lease logins must be dropped");
    assert!(a.list_databases("").await.unwrap().is_empty());
    let creds = h.count("SELECT count(*) FROM credentials WHERE status <> 'revoked'").await;
    assert_eq!(creds, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_replays_the_first_answer() {
    let h = Harness::start().await;
    let a = h.tenant("team-a").await;
    let first = a.create_database_idempotent(&db_req("orders"), "mr-42-create").await.unwrap();
    assert_eq!(first.status, 202);
    let replay = a.create_database_idempotent(&db_req("orders"), "mr-42-create").await.unwrap();
    assert_eq!(replay.status, 202);
    assert_eq!(replay.body.database.id, first.body.database.id);
    assert_eq!(replay.body.operation.as_ref().unwrap().id, first.body.operation.as_ref().unwrap().id);
    assert_eq!(h.count("SELECT count(*) FROM databases").await, 1);
    assert_eq!(h.count("SELECT count(*) FROM operations").await, 1);
    // The same key for a different request is refused.
    let e = a.create_database_idempotent(&db_req("other"), "mr-42-create").await.unwrap_err();
    assert_eq!(e.problem().unwrap().code, "idempotency_key_reused");
    // Without the key, a retry is a conflict, not a second database.
    assert_eq!(a.create_database(&db_req("orders")).await.unwrap_err().status(), Some(409));
    // Replays of refusals are refusals too.
    let bad = a.create_database_idempotent(&db_req("Bad Name"), "k2").await.unwrap_err();
    let bad2 = a.create_database_idempotent(&db_req("Bad Name"), "k2").await.unwrap_err();
    assert_eq!(bad.problem(), bad2.problem());
    assert_eq!(h.count("SELECT count(*) FROM databases").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_drift_and_cancel() {
    let h = Harness::start().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("app")).await;

    // Rotation: the new password works, the old one no longer does; the verifier, not the
    // plaintext, reached the server.
    let old = a.get_credential(db.id, Access::Write).await.unwrap();
    let rot = a.rotate_credential(db.id, Access::Write).await.unwrap();
    let op = a.wait_operation(rot.operation.id, WAIT).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let new = a.get_credential(db.id, Access::Write).await.unwrap();
    assert_ne!(new.password, old.password);
    assert!(new.rotated_at.is_some());
    connect_as(&new).await.unwrap();
    assert!(connect_as(&old).await.is_err());
    let mut su = h.target_db("postgres").await;
    let stored: String = sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = 'team-a_app_write'")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");

    // Drift: a role and then the database dropped by hand.
    sqlx::raw_sql("DROP ROLE \"team-a_app_read\"").execute(&mut su).await.unwrap_err(); // owns privileges: refused
    sqlx::raw_sql("DROP DATABASE \"team-a_app\" WITH (FORCE)").execute(&mut su).await.unwrap();
    sqlx::raw_sql("DROP ROLE \"team-a_app_read\"").execute(&mut su).await.unwrap();
    // The background reconciler sees it (GET serves its result, with its time)...
    let dropped_at = chrono::Utc::now();
    let drift = Harness::reconciled_drift(&a, db.id, dropped_at).await;
    assert!(drift.checked && drift.database_missing, "{drift:?}");
    assert_eq!(drift.missing_roles, vec!["team-a_app_read".to_string()]);
    // ...and so does a live check.
    let live = a.get_database_fresh(db.id).await.unwrap().drift.unwrap();
    assert!(live.database_missing && live.checked_at.unwrap() > drift.checked_at.unwrap(), "{live:?}");
    // Reconcile restores both, with the same credentials. The stored result is forgotten
    // with the operation's outcome: no stale "missing" after it.
    let rec = a.reconcile_database(db.id).await.unwrap();
    let op = a.wait_operation(rec.operation.unwrap().id, WAIT).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let after = a.get_database(db.id).await.unwrap().drift;
    assert!(after.as_ref().is_none_or(|d| d.is_clean()), "{after:?}");
    assert!(a.get_database_fresh(db.id).await.unwrap().drift.unwrap().is_clean());
    let since = chrono::Utc::now();
    assert!(Harness::reconciled_drift(&a, db.id, since).await.is_clean());
    connect_as(&a.get_credential(db.id, Access::Read).await.unwrap()).await.unwrap();
    connect_as(&new).await.unwrap();

    // Cancel a running operation: it stops at its next heartbeat, the database is marked
    // failed, and a DELETE cleans up whatever was half-made.
    let mut slow =
        Harness::start_with(ApiOptions { workers: 2, lease_ms: 1500, step_delay_ms: 1000, ..Default::default() }).await;
    let s = slow.tenant("team-a").await;
    let acc = s.create_database(&db_req("slow")).await.unwrap();
    let op_id = acc.operation.unwrap().id;
    wait_until("the operation to start", WAIT, || {
        let s = s.clone();
        async move { s.get_operation(op_id).await.unwrap().status == OperationStatus::Running }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let c = s.cancel_operation(op_id).await.unwrap();
    assert!(c.cancel_requested || c.status == OperationStatus::Cancelled, "{c:?}");
    let op = s.wait_operation(op_id, WAIT).await.unwrap();
    assert_eq!(op.status, OperationStatus::Cancelled, "{op:?}");
    assert_eq!(s.get_database(acc.database.id).await.unwrap().status, DatabaseStatus::Failed);
    assert_eq!(s.cancel_operation(op_id).await.unwrap_err().problem().unwrap().code, "already_finished");
    let del = s.delete_database(acc.database.id, false).await.unwrap();
    let op = s.wait_operation(del.operation.unwrap().id, WAIT).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert!(!slow.target_has_db("team-a_slow").await);
    assert!(slow.target_roles_like("team-a_slow%").await.is_empty());
    // Cancel a queued one: it ends at once.
    let acc = s.create_database(&db_req("slow2")).await.unwrap();
    let upd = s
        .update_database(acc.database.id, &UpdateDatabase { connection_limit: Some(4), ..Default::default() })
        .await
        .unwrap();
    let queued = upd.operation.unwrap();
    assert_eq!(queued.status, OperationStatus::Queued);
    let c = s.cancel_operation(queued.id).await.unwrap();
    assert_eq!(c.status, OperationStatus::Cancelled);
    // Operations list by target.
    let listed = s.list_operations(&format!("target_id={}", acc.database.id)).await.unwrap();
    assert_eq!(listed.len(), 2);
    slow.apis[0].kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn service_endpoints() {
    let h = Harness::start().await;
    let a = h.tenant("team-a").await;
    h.ready_database(&a, db_req("x")).await;
    let doc: serde_json::Value =
        reqwest::get(format!("{}/openapi.json", h.endpoint())).await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/v1/databases",
        "/v1/databases/{id}",
        "/v1/operations/{id}",
        "/v1/databases/{id}/leases",
        "/v1/instances",
        "/v1/tenants",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"].get("Problem").is_some());
    let page = reqwest::get(format!("{}/docs", h.endpoint())).await.unwrap().text().await.unwrap();
    assert!(page.contains("/openapi.json"));
    let metrics = reqwest::get(format!("{}/metrics", h.endpoint())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dbaas_http_requests_total{"), "{metrics}");
    assert!(
        metrics.contains("dbaas_operations_total{kind=\"provision_database\",outcome=\"succeeded\"} 1"),
        "{metrics}"
    );
    // Readiness needs every migration of this binary applied.
    assert_eq!(reqwest::get(format!("{}/readyz", h.endpoint())).await.unwrap().status().as_u16(), 200);
    let mut c = h.state_db().await;
    let (version,): (i64,) = sqlx::query_as(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations) RETURNING version",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let r = reqwest::get(format!("{}/readyz", h.endpoint())).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().await.unwrap().contains(&version.to_string()));
    assert_eq!(
        reqwest::get(format!("{}/healthz", h.endpoint())).await.unwrap().status().as_u16(),
        200,
        "alive, just not ready"
    );
    let nf = reqwest::get(format!("{}/v1/nope", h.endpoint())).await.unwrap();
    assert_eq!(nf.status().as_u16(), 404);
    assert_eq!(nf.headers()["content-type"], "application/problem+json");
    assert!(nf.headers().get("x-request-id").is_some());
    // Long-poll returns at once for an ended operation and honours the wait otherwise.
    let ops = a.list_operations("").await.unwrap();
    let t = std::time::Instant::now();
    a.wait_operation(ops[0].id, Duration::from_secs(10)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    let e = a
        .send::<(), Operation>(Method::GET, &format!("/v1/operations/{}?wait=forever", ops[0].id), None, &[], None)
        .await
        .unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "wait");
}
