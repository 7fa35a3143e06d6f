//! Faults inside the operation engine: a panicking operation, a heartbeat that cannot reach
//! the state database. Each ends in a clear state and the engine keeps its workers.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::proxy::Proxy;
use common::*;
use dbaas_client::*;

const WAIT: Duration = Duration::from_secs(60);

/// A panic in an operation used to end its worker task for good while the heartbeat kept
/// the claim alive: the operation stayed `running` forever and every worker could be lost.
#[tokio::test]
async fn a_panic_fails_its_operation_and_keeps_the_workers() {
    let opts = ApiOptions {
        workers: 2,
        env: vec![("DBAAS_TEST_PANIC_KIND".into(), "delete_database".into())],
        ..Default::default()
    };
    let h = Harness::start_with(opts).await;
    let a = h.tenant("team-a").await;
    let mut dbs = Vec::new();
    for i in 0..3 {
        dbs.push(h.ready_database(&a, db_req(&format!("p{i}"))).await);
    }
    // Three panics with two workers: each one ends its operation, and no worker is lost.
    for db in &dbs {
        let op = a.delete_database(db.id, false).await.unwrap().operation.unwrap();
        let op = a.wait_operation(op.id, WAIT).await.unwrap();
        assert_eq!(op.status, OperationStatus::Failed, "{op:?}");
        assert_eq!(op.error.unwrap().code, "panic");
    }
    let after = h.ready_database(&a, db_req("after")).await;
    assert_eq!(after.status, DatabaseStatus::Ready);
    let running = h.count("SELECT count(*) FROM operations WHERE status = 'running'").await;
    assert_eq!(running, 0, "an operation was left running");
}

/// An attempt whose heartbeats cannot reach the state database stops before its lease runs
/// out (another worker may claim it then); the operation then resumes and ends once.
#[tokio::test]
async fn an_attempt_stops_when_its_heartbeats_fail() {
    let mut h = Harness::start().await;
    let proxy = Proxy::start(h.state.port).await;
    let engine_url = h.state.url.clone().replace(&format!(":{}/", h.state.port), &format!(":{}/", proxy.port));
    // The harness's process stays for registering; a second one runs the operations with
    // its engine pool behind the proxy.
    h.apis[0].kill();
    let opts = ApiOptions {
        workers: 1,
        lease_ms: 3000,
        step_delay_ms: 1500,
        env: vec![("DBAAS_ENGINE_DATABASE_URL".into(), engine_url)],
        in_process: false,
    };
    let i = h.spawn_api(opts).await;
    h.admin = Client::new(&h.apis[i].endpoint, &h.admin_token).unwrap();
    let a = h.tenant("team-a").await;
    let acc = a.create_database(&db_req("cut")).await.unwrap();
    let op = acc.operation.unwrap().id;
    wait_until("the first attempt to be running", WAIT, || {
        let a = a.clone();
        async move { a.operation_logs(op).await.unwrap().iter().any(|l| l.message.starts_with("phase 0/5")) }
    })
    .await;
    proxy.pause();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let logs: Vec<String> = a.operation_logs(op).await.unwrap().into_iter().map(|l| l.message).collect();
    let stopped = logs.iter().position(|l| l.starts_with("attempt stopped")).unwrap_or_else(|| {
        panic!("the attempt went on without heartbeats: {logs:#?}");
    });
    // Nothing of the attempt after it stopped (the state database is still reachable for
    // log lines: only the engine's path is cut).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later: Vec<String> = a.operation_logs(op).await.unwrap().into_iter().map(|l| l.message).collect();
    assert_eq!(later.len(), stopped + 1, "the attempt kept working after it stopped: {later:#?}");
    proxy.resume();
    let done = a.wait_operation(op, WAIT).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2);
    assert_eq!(h.target_roles_like("team-a\\_cut\\_%").await.len(), 3);
}

/// SIGTERM during an operation: the process stops claiming, lets the attempt run for the
/// shutdown grace, then stops it and hands the operation back to the queue (not counted as
/// an attempt) and exits, long before the lease would have freed it. Another process then
/// finishes it once.
#[tokio::test]
async fn sigterm_hands_running_attempts_back_within_the_grace() {
    let mut h = Harness::start().await;
    h.apis[0].kill();
    let lease_ms = 120_000;
    let opts = ApiOptions {
        workers: 1,
        lease_ms,
        step_delay_ms: 2000,
        env: vec![("DBAAS_SHUTDOWN_GRACE_MS".into(), "1000".into())],
        in_process: false,
    };
    let i = h.spawn_api(opts).await;
    h.admin = Client::new(&h.apis[i].endpoint, &h.admin_token).unwrap();
    let a = h.tenant("team-a").await;
    let op = a.create_database(&db_req("handed")).await.unwrap().operation.unwrap().id;
    wait_until("the first attempt to be running", WAIT, || {
        let a = a.clone();
        async move { a.operation_logs(op).await.unwrap().iter().any(|l| l.message.starts_with("phase 0/5")) }
    })
    .await;
    let sent = std::time::Instant::now();
    let status = h.apis[i].terminate();
    let took = sent.elapsed();
    assert!(status.success(), "the process did not exit cleanly: {status:?}");
    // Without the hand-back it would exit after the grace and leave the claim to the lease.
    assert!(took < Duration::from_millis(lease_ms / 4), "shutdown took {took:?}");
    let (state, locked_by, attempts): (String, Option<String>, i32) =
        sqlx::query_as("SELECT status, locked_by, attempts FROM operations WHERE id = $1")
            .bind(op)
            .fetch_one(&mut h.state_db().await)
            .await
            .unwrap();
    assert_eq!((state.as_str(), locked_by, attempts), ("queued", None, 0), "the operation was not handed back");

    let j = h.spawn_api(ApiOptions { workers: 1, ..Default::default() }).await;
    let a = Client::new(&h.apis[j].endpoint, a.token()).unwrap();
    let done = a.wait_operation(op, WAIT).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 1, "the handed-back attempt counted");
    let logs: Vec<String> = a.operation_logs(op).await.unwrap().into_iter().map(|l| l.message).collect();
    assert_eq!(logs.iter().filter(|l| l.starts_with("attempt handed back")).count(), 1, "{logs:#?}");
    assert_eq!(h.target_roles_like("team-a\\_handed\\_%").await.len(), 3);
}
