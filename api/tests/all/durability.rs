//! Operations survive a killed API process and run exactly once across processes.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use dbaas_client::*;

/// Checks every database of `tenant` is complete on the target: database, three roles,
/// no drift, and its admin can log in.
async fn all_complete(h: &Harness, client: &Client, names: &[String]) {
    for name in names {
        let d = client.find_database("team-a", name).await.unwrap();
        assert_eq!(d.status, DatabaseStatus::Ready, "{name}");
        let drift = Harness::reconciled_drift(client, d.id, chrono::Utc::now()).await;
        assert!(drift.is_clean(), "{name}: {drift:?}");
        let roles = h.target_roles_like(&format!("team-a\\_{name}\\_%")).await;
        assert_eq!(roles.len(), 3, "{name}: {roles:?}");
        connect_as(&client.get_credential(d.id, Access::Admin).await.unwrap()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_operation_then_resume() {
    // Slow steps so the kill lands inside operations; a short lease so the resume is quick.
    let mut h =
        Harness::start_with(ApiOptions { workers: 4, lease_ms: 2000, step_delay_ms: 300, ..Default::default() }).await;
    let a = h.tenant("team-a").await;
    let names: Vec<String> = (0..8).map(|i| format!("db{i}")).collect();
    let mut ops = Vec::new();
    for n in &names {
        ops.push(a.create_database(&db_req(n)).await.unwrap().operation.unwrap().id);
    }
    wait_until("operations to be mid-way", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM operation_logs WHERE message = 'phase 2/5: database'").await >= 2
    })
    .await;
    h.apis[0].kill();
    let running = h.count("SELECT count(*) FROM operations WHERE status = 'running'").await;
    assert!(running >= 1, "the kill should leave claimed operations behind");

    let i = h.spawn_api(ApiOptions { workers: 4, lease_ms: 2000, step_delay_ms: 0, ..Default::default() }).await;
    let b = Client::new(&h.apis[i].endpoint, &h.admin_token).unwrap();
    for op in &ops {
        let op = b.wait_operation(*op, Duration::from_secs(90)).await.unwrap();
        assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    }
    // At least one operation was resumed after its worker died.
    let resumed = h.count("SELECT count(*) FROM operations WHERE attempts >= 2").await;
    assert!(resumed >= 1, "no operation was resumed");
    // Nothing duplicated: one operation and one record per database; each complete.
    assert_eq!(h.count("SELECT count(*) FROM operations WHERE kind = 'provision_database'").await, 8);
    assert_eq!(h.count("SELECT count(*) FROM databases").await, 8);
    assert_eq!(h.count("SELECT count(*) FROM credentials").await, 24);
    let b = b.with_token(&h.admin_token);
    all_complete(&h, &b, &names).await;
    let mut c = h.target_db("postgres").await;
    let dbs: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'team-a_%'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(dbs, 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_run_each_operation_once() {
    // Room for the one tenant on both processes: this is about exactly-once, not fair shares.
    let opts = ApiOptions {
        workers: 4,
        lease_ms: 5000,
        step_delay_ms: 100,
        env: vec![("DBAAS_TENANT_CONCURRENCY".into(), "8".into())],
        in_process: false,
    };
    let mut h = Harness::start_with(opts.clone()).await;
    let i = h.spawn_api(opts).await;
    let a = h.tenant("team-a").await;
    let b = Client::new(&h.apis[i].endpoint, a_token(&h, &a).as_str()).unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    // Concurrent creations on one instance, half through each process.
    let mut tasks = Vec::new();
    for (k, n) in names.iter().enumerate() {
        let c = if k % 2 == 0 { a.clone() } else { b.clone() };
        let n = n.clone();
        tasks.push(tokio::spawn(async move {
            let acc = c.create_database(&db_req(&n)).await.unwrap();
            c.wait_operation(acc.operation.unwrap().id, Duration::from_secs(120)).await.unwrap()
        }));
    }
    for t in tasks {
        let op = t.await.unwrap();
        assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
        assert_eq!(op.attempts, 1, "{op:?}");
        assert!(op.error.is_none(), "{op:?}");
    }
    // Each operation was started exactly once, and both processes did work.
    let mut c = h.state_db().await;
    let starts: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT operation_id, substring(message from 'started by (.*)$') FROM operation_logs WHERE message LIKE 'attempt % started by %'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(starts.len(), 20);
    assert_eq!(starts.iter().map(|s| s.0).collect::<BTreeSet<_>>().len(), 20);
    let workers: BTreeSet<&String> = starts.iter().map(|s| &s.1).collect();
    assert_eq!(workers.len(), 2, "both processes should have run operations: {workers:?}");
    all_complete(&h, &a, &names).await;
}

/// The bearer secret a tenant client was made with (kept by the harness's clients only).
fn a_token(h: &Harness, _a: &Client) -> String {
    // Tenants are created with a fresh token each; mint one more for the second endpoint.
    let out = std::process::Command::new(BIN)
        .args(["token", "create", "--tenant", "team-a"])
        .env("DATABASE_URL", h.state.url.clone())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A process frozen after its attempt finished but before recording it: its claim lapses,
/// another process takes the operation over and ends it. The frozen one, resumed, used to log
/// `succeeded` a second time (the chaos test saw it once); its outcome and its closing log
/// line now commit together, so it writes neither.
#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_that_lost_its_claim_records_nothing() {
    let frozen = ApiOptions {
        lease_ms: 1500,
        env: vec![("DBAAS_TEST_PAUSE_BEFORE_OUTCOME_MS".into(), "6000".into())],
        ..Default::default()
    };
    let mut h = Harness::start_with(frozen).await;
    let a = h.tenant("team-a").await;
    let op = a.create_database(&db_req("orders")).await.unwrap().operation.unwrap().id;
    // The only process runs it, then sits on the outcome.
    wait_until("the attempt to finish its work", Duration::from_secs(30), || async {
        a.operation_logs(op).await.unwrap().iter().any(|l| l.message.starts_with("phase 5/5"))
    })
    .await;
    h.spawn_api(ApiOptions { lease_ms: 1500, ..Default::default() }).await;
    let done = a.wait_operation(op, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded);
    // Let the frozen attempt wake up and try to record its outcome.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let n = h
        .count(&format!("SELECT count(*) FROM operation_logs WHERE operation_id = '{op}' AND message = 'succeeded'"))
        .await;
    assert_eq!(n, 1, "{:?}", a.operation_logs(op).await.unwrap());
}
