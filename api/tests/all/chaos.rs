//! Two replicas, one of them SIGKILLed or SIGSTOPped (past its lease) every few seconds while
//! 50 mixed operations run. Every operation must end exactly once, and nothing may be left
//! half-made: each database is either ready with its three marked roles, or gone with them;
//! each lease is either live with its role, or revoked without it.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use dbaas_client::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::Rng;

const WAIT: Duration = Duration::from_secs(180);

fn opts() -> ApiOptions {
    ApiOptions { workers: 2, lease_ms: 2000, step_delay_ms: 150, ..Default::default() }
}

fn signal(p: &ApiProcess, s: Signal) {
    let _ = kill(Pid::from_raw(p.pid()), s);
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_killed_and_frozen_during_fifty_operations() {
    let mut h = Harness::start_with(opts()).await;
    h.spawn_api(opts()).await;
    let a = h.tenant("team-a").await;
    let mut ops: Vec<uuid::Uuid> = Vec::new();
    // Databases to work on, made before the chaos starts.
    let mut base = Vec::new();
    for i in 0..5 {
        base.push(h.ready_database(&a, db_req(&format!("base{i}"))).await);
    }
    let chaos_until = Instant::now() + Duration::from_secs(25);
    // Operations go in while replicas die and freeze.
    let submit = {
        let a = a.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..20 {
                let acc = a.create_database(&db_req(&format!("new{i}"))).await.unwrap();
                ids.push(acc.operation.unwrap().id);
            }
            for db in &base {
                for access in [Access::Read, Access::Write] {
                    ids.push(a.rotate_credential(db.id, access).await.unwrap().operation.id);
                }
                let lease = a.create_lease(db.id, &CreateLease { access: Access::Read, ttl: "1h".into() }).await;
                ids.push(lease.unwrap().operation.unwrap().id);
                let req =
                    CreateMaintenance { kind: MaintenanceKind::Vacuum, tables: vec![], options: Default::default() };
                ids.push(a.start_maintenance(db.id, &req).await.unwrap().operation.id);
            }
            for i in 0..10 {
                let id = a.find_database("team-a", &format!("new{i}")).await.unwrap().id;
                // A delete waits for the create before it (operations on one target run in order).
                ids.push(a.delete_database(id, false).await.unwrap().operation.unwrap().id);
            }
            ids
        })
    };
    let mut rng = rand::thread_rng();
    let mut frozen: Option<(usize, Instant)> = None;
    while Instant::now() < chaos_until || !submit.is_finished() {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(800..2500))).await;
        if let Some((i, since)) = frozen {
            if since.elapsed() > Duration::from_millis(3000) {
                signal(&h.apis[i], Signal::SIGCONT);
                frozen = None;
            }
            continue;
        }
        // The first process serves the test's client: only the second one is abused.
        let i = h.apis.len() - 1;
        if rng.gen_bool(0.5) {
            h.apis[i].kill();
            h.apis.pop();
            h.spawn_api(opts()).await;
        } else {
            signal(&h.apis[i], Signal::SIGSTOP);
            frozen = Some((i, Instant::now()));
        }
    }
    if let Some((i, _)) = frozen {
        signal(&h.apis[i], Signal::SIGCONT);
    }
    ops.extend(submit.await.unwrap());
    assert_eq!(ops.len(), 50);

    // Every operation ends, once.
    for id in &ops {
        let op = a.wait_operation(*id, WAIT).await.unwrap();
        assert!(op.status.is_terminal(), "{op:?}");
        assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}: {:?}", a.operation_logs(*id).await.unwrap());
    }
    let open = h.count("SELECT count(*) FROM operations WHERE status IN ('queued', 'running')").await;
    assert_eq!(open, 0, "operations left open");
    let twice = h
        .count(
            "SELECT count(*) FROM (SELECT operation_id FROM operation_logs WHERE message = 'succeeded' \
             GROUP BY operation_id HAVING count(*) > 1) x",
        )
        .await;
    assert_eq!(twice, 0, "an operation succeeded twice");

    // Nothing half-made on the instance.
    let dbs = a.list_databases("include_deleted=true").await.unwrap();
    for d in dbs.iter().filter(|d| d.tenant == "team-a") {
        let roles = h.target_roles_like(&format!("{}\\_%", d.physical_name)).await;
        let statics: Vec<&String> = roles.iter().filter(|r| r.split('_').count() == 3).collect();
        match d.status {
            DatabaseStatus::Ready => {
                assert!(h.target_has_db(&d.physical_name).await, "{} is ready but missing", d.physical_name);
                assert_eq!(statics.len(), 3, "{}: {roles:?}", d.physical_name);
                let drift = Harness::reconciled_drift(&a, d.id, chrono::Utc::now()).await;
                assert!(drift.is_clean(), "{}: {drift:?}", d.physical_name);
            }
            DatabaseStatus::Deleted => {
                assert!(!h.target_has_db(&d.physical_name).await, "{} deleted but present", d.physical_name);
                assert!(roles.is_empty(), "{}: roles left {roles:?}", d.physical_name);
            }
            other => panic!("{} ended {other:?}", d.physical_name),
        }
    }
    for db in &base {
        for c in a.list_credentials(db.id).await.unwrap() {
            let exists = !h.target_roles_like(&c.username).await.is_empty();
            match c.status {
                CredentialStatus::Active => assert!(exists, "{} active without its role", c.username),
                CredentialStatus::Revoked => assert!(!exists, "{} revoked with its role", c.username),
                other => panic!("{} left {other:?}", c.username),
            }
        }
    }
}
