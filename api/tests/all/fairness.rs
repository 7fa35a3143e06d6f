//! Fair sharing: one tenant cannot occupy every worker, expired leases are revoked on time
//! whatever else runs, schedules outside their window do not block others, and the count
//! caps hold. Stuck states end: a failed or cancelled revocation is tried again.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use chrono::{Timelike, Utc};
use common::*;
use dbaas_client::*;
use sqlx::PgConnection;

const WAIT: Duration = Duration::from_secs(60);

/// DELETE with a one-hour grace while a session stays open: the operation waits that long.
async fn slow_delete(c: &Client, db: &Database) -> Operation {
    let path = format!("/v1/databases/{}?grace=1h", db.id);
    let r = c.send::<(), DatabaseAccepted>(reqwest::Method::DELETE, &path, None, &[], None).await.unwrap();
    r.body.operation.unwrap()
}

#[tokio::test]
async fn one_tenant_cannot_occupy_every_worker_and_leases_expire_on_time() {
    let opts = ApiOptions { env: vec![("DBAAS_TENANT_CONCURRENCY".into(), "2".into())], ..Default::default() };
    let h = Harness::start_with(opts).await;
    let a = h.tenant("team-a").await;
    let b = h.tenant("team-b").await;
    let mut sessions: Vec<PgConnection> = Vec::new();
    let mut dbs = Vec::new();
    for i in 0..4 {
        let db = h.ready_database(&a, db_req(&format!("busy{i}"))).await;
        sessions.push(connect_as(&a.get_credential(db.id, Access::Read).await.unwrap()).await.unwrap());
        dbs.push(db);
    }
    // A lease on the first database, expiring while its delete waits out the grace period.
    let lease = a.create_lease(dbs[0].id, &CreateLease { access: Access::Read, ttl: "10s".into() }).await.unwrap();
    let lease_op = a.wait_operation(lease.operation.unwrap().id, WAIT).await.unwrap();
    assert_eq!(lease_op.status, OperationStatus::Succeeded);
    // Four workers, four hour-long deletes of one tenant.
    for db in &dbs {
        slow_delete(&a, db).await;
    }
    // Another tenant still gets its database.
    let started = std::time::Instant::now();
    let other = h.ready_database(&b, db_req("quick")).await;
    assert_eq!(other.status, DatabaseStatus::Ready);
    assert!(started.elapsed() < Duration::from_secs(30));
    let running = h
        .count(
            "SELECT count(*) FROM operations o JOIN tenants t ON t.id = o.tenant_id \
             WHERE t.name = 'team-a' AND o.status = 'running'",
        )
        .await;
    assert_eq!(running, 2, "team-a runs more than its share");
    // The lease expires and is revoked although its database's delete is still running.
    let role = lease.credential.username.clone();
    wait_until("the expired lease to be revoked", WAIT, || {
        let (a, id, db) = (a.clone(), lease.credential.id, dbs[0].id);
        async move { a.get_lease(db, id).await.unwrap().status == CredentialStatus::Revoked }
    })
    .await;
    assert!(h.target_roles_like(&role).await.is_empty(), "the expired login still exists");
}

#[tokio::test]
async fn schedules_outside_their_window_do_not_block_the_others() {
    let h = Harness::start().await;
    let windowed = CreateInstance { ca_cert: h.target_pg.ca_cert.clone(), ..instance_req(&h.target_pg, "windowed") };
    h.admin.create_instance(&windowed).await.unwrap();
    let now = Utc::now();
    let hhmm = |h: u32| format!("{:02}:{:02}", (now.hour() + h) % 24, now.minute());
    let window = MaintenanceWindow { start: hhmm(2), end: hhmm(3) };
    h.admin.set_maintenance_window("windowed", Some(&window)).await.unwrap();
    let a = h.tenant("team-a").await;
    let closed = h.ready_database(&a, CreateDatabase { instance: Some("windowed".into()), ..db_req("closed") }).await;
    let every2s = |kind| CreateSchedule {
        kind,
        cron: "*/2 * * * * *".into(),
        tables: vec![],
        options: Default::default(),
        enabled: None,
    };
    a.create_schedule(closed.id, &every2s(ScheduleKind::Analyze)).await.unwrap();
    // 150 more schedules due since yesterday, all outside their window.
    let mut st = h.state_db().await;
    sqlx::raw_sql(
        "INSERT INTO schedules (id, database_id, kind, cron, tables, options, enabled, next_run_at) \
         SELECT gen_random_uuid(), database_id, kind, cron, tables, options, true, now() - interval '1 day' \
         FROM schedules, generate_series(1, 150)",
    )
    .execute(&mut st)
    .await
    .unwrap();
    let open = h.ready_database(&a, db_req("open")).await;
    a.create_schedule(open.id, &every2s(ScheduleKind::Analyze)).await.unwrap();
    wait_until("the schedule in its window to fire", WAIT, || {
        let a = a.clone();
        async move {
            let ops = a.list_operations(&format!("target_id={}&kind=maintenance", open.id)).await.unwrap();
            ops.iter().any(|o| o.status == OperationStatus::Succeeded)
        }
    })
    .await;
    // The others still wait for their window, without running.
    let ran = a.list_operations(&format!("target_id={}&kind=maintenance", closed.id)).await.unwrap();
    assert!(ran.is_empty(), "{ran:?}");
}

#[tokio::test]
async fn frequent_crons_and_counts_over_the_caps_are_refused() {
    let opts =
        ApiOptions { env: vec![("DBAAS_MIN_SCHEDULE_INTERVAL_SECS".into(), "3600".into())], ..Default::default() };
    let h = Harness::start_with(opts).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("app")).await;
    let sched = |cron: &str| CreateSchedule {
        kind: ScheduleKind::Vacuum,
        cron: cron.into(),
        tables: vec![],
        options: Default::default(),
        enabled: None,
    };
    for cron in ["* * * * * *", "*/5 * * * *", "0,30 3 * * *"] {
        let e = a.create_schedule(db.id, &sched(cron)).await.unwrap_err();
        let p = e.problem().unwrap();
        assert_eq!((p.status, p.errors[0].field.as_str(), p.errors[0].code.as_str()), (422, "cron", "too_frequent"));
    }
    for i in 0..10 {
        a.create_schedule(db.id, &sched(&format!("{i} 3 * * *"))).await.unwrap();
    }
    let e = a.create_schedule(db.id, &sched("0 4 * * *")).await.unwrap_err();
    assert_eq!(e.problem().unwrap().code, "quota_exceeded");
    // The backup policy may add its own schedules to a new database at any moment.
    let tenant_made = a.list_schedules(db.id).await.unwrap().into_iter().filter(|s| s.origin == "tenant").count();
    assert_eq!(tenant_made, 10);

    // A maintenance statement timeout is bounded.
    let req = CreateMaintenance {
        kind: MaintenanceKind::Vacuum,
        tables: vec![],
        options: MaintenanceOptions { statement_timeout: Some("48h".into()), ..Default::default() },
    };
    let e = a.start_maintenance(db.id, &req).await.unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "options.statement_timeout");

    // Leases: at most 50 live per database.
    for _ in 0..50 {
        a.create_lease(db.id, &CreateLease { access: Access::Read, ttl: "1h".into() }).await.unwrap();
    }
    let e = a.create_lease(db.id, &CreateLease { access: Access::Read, ttl: "1h".into() }).await.unwrap_err();
    assert_eq!(e.problem().unwrap().code, "quota_exceeded");
}

/// A cancelled revocation used to leave the lease `revoking` forever, its role alive.
#[tokio::test]
async fn a_cancelled_revocation_is_tried_again() {
    let opts = ApiOptions { step_delay_ms: 3000, ..Default::default() };
    let h = Harness::start_with(opts).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("app")).await;
    let lease = a.create_lease(db.id, &CreateLease { access: Access::Read, ttl: "10s".into() }).await.unwrap();
    a.wait_operation(lease.operation.unwrap().id, WAIT).await.unwrap();
    let started = std::time::Instant::now();
    let first = loop {
        let ops = a.list_operations(&format!("target_id={}&kind=revoke_lease", db.id)).await.unwrap();
        if let Some(o) = ops.first() {
            break o.id;
        }
        assert!(started.elapsed() < WAIT, "the reaper never queued the revocation");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    a.cancel_operation(first).await.unwrap();
    let op = a.wait_operation(first, WAIT).await.unwrap();
    assert_eq!(op.status, OperationStatus::Cancelled, "{op:?}");
    wait_until("the lease to be revoked after all", WAIT, || {
        let (a, id) = (a.clone(), lease.credential.id);
        async move { a.get_lease(db.id, id).await.unwrap().status == CredentialStatus::Revoked }
    })
    .await;
    assert!(h.target_roles_like(&lease.credential.username).await.is_empty());
}

/// Two tenants racing for an instance's last slot: exactly one gets it (the count used to be
/// read in a snapshot taken before the instance's row lock, so both could pass).
#[tokio::test]
async fn two_creates_cannot_both_take_the_last_slot() {
    let h = Harness::start().await;
    let a = h.tenant("team-a").await;
    let b = h.tenant("team-b").await;
    for round in 0..5 {
        let name = format!("cap{round}");
        let one = CreateInstance { max_databases: 1, ..instance_req(&h.target_pg, &name) };
        h.admin.create_instance(&one).await.unwrap();
        let req = CreateDatabase { instance: Some(name.clone()), ..db_req(&format!("r{round}")) };
        let (x, y) = tokio::join!(a.create_database(&req), b.create_database(&req));
        let won = [x.is_ok(), y.is_ok()].iter().filter(|ok| **ok).count();
        assert_eq!(won, 1, "round {round}: {x:?} / {y:?}");
        let lost = x.err().or(y.err()).unwrap();
        assert_eq!(lost.problem().unwrap().code, "instance_full");
    }
}

/// Logs, audit rows, schedule runs and idempotency keys do not pile up forever.
#[tokio::test]
async fn old_rows_are_purged() {
    let opts = ApiOptions { env: vec![("DBAAS_PURGE_INTERVAL_MS".into(), "300".into())], ..Default::default() };
    let h = Harness::start_with(opts).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("app")).await;
    let s = a
        .create_schedule(
            db.id,
            &CreateSchedule {
                kind: ScheduleKind::Vacuum,
                cron: "0 3 * * *".into(),
                tables: vec![],
                options: Default::default(),
                enabled: None,
            },
        )
        .await
        .unwrap();
    let mut st = h.state_db().await;
    sqlx::raw_sql(&format!(
        "INSERT INTO operations (id, kind, target_kind, target_id, status, created_at, finished_at) \
           VALUES ('00000000-0000-0000-0000-000000000001', 'maintenance', 'database', '{db}', 'succeeded', \
                   now() - interval '100 days', now() - interval '100 days');
         INSERT INTO operation_logs (operation_id, level, message) \
           SELECT '00000000-0000-0000-0000-000000000001', 'info', 'old ' || g FROM generate_series(1, 12000) g;
         INSERT INTO audit_log (at, actor, action, target, status_code) \
           SELECT now() - interval '100 days', 'old', 'POST x', '/x', 200 FROM generate_series(1, 10);
         INSERT INTO schedule_runs (schedule_id, slot, operation_id, created_at) \
           VALUES ('{s}', now() - interval '100 days', '00000000-0000-0000-0000-000000000001', now() - interval '100 days');
         INSERT INTO idempotency_keys (principal, key, method, path, request_hash, created_at) \
           VALUES ('p', 'old', 'POST', '/x', '\\x00', now() - interval '2 days');",
        db = db.id,
        s = s.id
    ))
    .execute(&mut st)
    .await
    .unwrap();
    wait_until("old rows to be purged", WAIT, || async {
        h.count(
            "SELECT (SELECT count(*) FROM operation_logs WHERE message LIKE 'old %') \
                  + (SELECT count(*) FROM audit_log WHERE actor = 'old') \
                  + (SELECT count(*) FROM schedule_runs WHERE created_at < now() - interval '1 day') \
                  + (SELECT count(*) FROM idempotency_keys WHERE key = 'old')",
        )
        .await
            == 0
    })
    .await;
    // What is recent stays.
    assert!(h.count("SELECT count(*) FROM audit_log").await > 0);
    assert!(h.count("SELECT count(*) FROM operation_logs").await > 0);
}
