//! A whole managed instance restored with the real pgBackRest: in place to a second between
//! two commits (the service's records stay true: a password rotated since still works, a
//! database created since comes back empty), to the end of the archive after its primary
//! was killed (no archived transaction lost), and into a new instance built from the
//! repository. Bad requests are 422s before anything runs.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::hosts::*;
use common::*;
use dbaas_client::*;

async fn admin_conn(c: &Client, db: uuid::Uuid) -> sqlx::PgConnection {
    connect_as(&c.get_credential(db, Access::Admin).await.unwrap()).await.unwrap()
}

async fn now_after(c: &Client, db: uuid::Uuid, sql: &str) -> DateTime<Utc> {
    let mut conn = admin_conn(c, db).await;
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&mut conn).await.unwrap()
}

async fn ids(c: &Client, db: uuid::Uuid) -> Vec<i32> {
    let mut conn = admin_conn(c, db).await;
    sqlx::query_scalar("SELECT i FROM t ORDER BY i").fetch_all(&mut conn).await.unwrap()
}

async fn latest_reaches(h: &Harness, name: &str, time: DateTime<Utc>) {
    let start = Instant::now();
    loop {
        let w = h.admin.instance_recovery(name).await.unwrap();
        if w.latest.is_some_and(|l| l >= time) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "the window never reached {time}: {w:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn restored(h: &Harness, name: &str, req: &RestoreInstance) -> Operation {
    let inst = h.admin.restore_instance(name, req).await.unwrap();
    let op = h.admin.wait_operation(inst.last_operation_id.unwrap(), Duration::from_secs(300)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_text(&h.admin, op.id).await);
    op
}

/// Retries `check` for a while: what the restore queued behind itself runs after it.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < Duration::from_secs(120), "never: {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_is_restored_in_place_after_a_kill_and_into_a_copy() {
    let h = Harness::start().await;
    let (dir, _host) = local_host(&h, "pitr-box2", [25840, 25869]).await;
    let a = h.tenant("team-a").await;
    let req = CreateInstance { settings: settings(&[("archive_timeout", "2s")]), ..managed("pg-whole", "pitr-box2") };
    h.admin.create_instance(&req).await.unwrap();
    let (op, _) = settle(&h.admin, "pg-whole").await;
    assert_eq!(op.status, OperationStatus::Succeeded);
    let orders = h
        .ready_database(
            &a,
            CreateDatabase { name: "orders".into(), instance: Some("pg-whole".into()), ..Default::default() },
        )
        .await;
    eventually("the first base backup", || async {
        h.admin.instance_recovery("pg-whole").await.unwrap().earliest.is_some()
    })
    .await;

    now_after(&a, orders.id, "CREATE TABLE t (i int); INSERT INTO t VALUES (1)").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = now_after(&a, orders.id, "SELECT 1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    now_after(&a, orders.id, "INSERT INTO t VALUES (2)").await;
    // After `t`: a rotated password and a new database.
    let rot = a.rotate_credential(orders.id, Access::Write).await.unwrap();
    a.wait_operation(rot.operation.id, Duration::from_secs(60)).await.unwrap();
    let later = h
        .ready_database(
            &a,
            CreateDatabase { name: "later".into(), instance: Some("pg-whole".into()), ..Default::default() },
        )
        .await;
    latest_reaches(&h, "pg-whole", t).await;

    // Bad requests change nothing.
    let at = |time| RestoreInstance { time: Some(time), target: Some(RestoreTarget::InPlace), ..Default::default() };
    for (req, field, code) in [
        (at(t - chrono::Duration::days(1)), "time", "outside_window"),
        (RestoreInstance { latest: true, ..at(t) }, "time", "one_target"),
        (RestoreInstance { target: Some(RestoreTarget::New), ..at(t) }, "name", "required"),
        (RestoreInstance { time: None, lsn: Some("0/zz".into()), ..at(t) }, "lsn", "invalid_lsn"),
        (RestoreInstance { target: None, ..at(t) }, "target", "required"),
    ] {
        let e = h.admin.restore_instance("pg-whole", &req).await.unwrap_err();
        let p = problem(&e);
        assert_eq!((p.status, p.errors[0].field.as_str(), p.errors[0].code.as_str()), (422, field, code), "{p:?}");
    }
    let e = a.restore_instance("pg-whole", &at(t)).await.unwrap_err();
    assert_eq!(problem(&e).status, 403);
    assert_eq!(h.admin.get_instance("pg-whole").await.unwrap().status, InstanceStatus::Ready);

    // In place, to `t`; meanwhile a database's own restore to a time waits its turn (409).
    let inst = h.admin.restore_instance("pg-whole", &at(t)).await.unwrap();
    assert_eq!(inst.status, InstanceStatus::Restoring);
    let own = RestoreRequest {
        backup: None,
        time: Some(t),
        target: RestoreTarget::New,
        name: Some("orders-meanwhile".into()),
        retain_hours: None,
        grace: None,
    };
    let e = a.restore_database(orders.id, &own).await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).code.as_str()), (409, "invalid_state"), "{e}");
    let op = h.admin.wait_operation(inst.last_operation_id.unwrap(), Duration::from_secs(300)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_text(&h.admin, op.id).await);
    let log = log_text(&h.admin, op.id).await;
    for step in [
        "safety base backup",
        "pgbackrest restore --delta",
        "recovering and promoting",
        "catalog vs records: 2 database(s) provisioned again",
        "1 created after the target, recreated empty",
    ] {
        assert!(log.contains(step), "missing {step:?} in\n{log}");
    }
    assert_eq!(h.admin.get_instance("pg-whole").await.unwrap().status, InstanceStatus::Ready);
    assert_eq!(ids(&a, orders.id).await, vec![1]);
    // The records hold: the password rotated after `t` works, the database made after it is back.
    let write = a.get_credential(orders.id, Access::Write).await.unwrap();
    eventually("the rotated password works again", || async { connect_as(&write).await.is_ok() }).await;
    let later_admin = a.get_credential(later.id, Access::Admin).await.unwrap();
    eventually("the database created after t is back", || async { connect_as(&later_admin).await.is_ok() }).await;
    assert!(!std::fs::read_dir(dir.root()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("restore-")));

    // Commits archived, then the primary killed: a restore to the archive's end keeps them all.
    let mut last = t;
    for i in 10..20 {
        last = now_after(&a, orders.id, &format!("INSERT INTO t VALUES ({i})")).await;
    }
    latest_reaches(&h, "pg-whole", last).await;
    let inst_dir = dir.instance_dirs().into_iter().find(|d| d.starts_with("pg-whole-")).unwrap();
    let pidfile = std::fs::read_to_string(format!("{}/{inst_dir}/pgdata/postmaster.pid", dir.root())).unwrap();
    let pid: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    restored(
        &h,
        "pg-whole",
        &RestoreInstance { latest: true, target: Some(RestoreTarget::InPlace), ..Default::default() },
    )
    .await;
    let got = ids(&a, orders.id).await;
    assert_eq!(got, [1].into_iter().chain(10..20).collect::<Vec<i32>>());

    // Into a new instance built from the repository, as of `t`.
    let req = RestoreInstance { target: Some(RestoreTarget::New), name: Some("pg-copy".into()), ..at(t) };
    let copy = h.admin.restore_instance("pg-whole", &req).await.unwrap();
    assert_eq!(copy.status, InstanceStatus::Provisioning);
    let (op, copy) = settle(&h.admin, "pg-copy").await;
    assert_eq!(
        (op.status, copy.status),
        (OperationStatus::Succeeded, InstanceStatus::Ready),
        "{}",
        log_text(&h.admin, op.id).await
    );
    let log = log_text(&h.admin, op.id).await;
    assert!(log.contains("restoring instance pg-whole's repository") && log.contains("restored databases"), "{log}");
    let physical = write.uri.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
    let copy_dir = dir.instance_dirs().into_iter().find(|d| d.starts_with("pg-copy-")).unwrap();
    let out = std::process::Command::new("su")
        .args([
            "postgres",
            "-c",
            &format!(
                "psql -X -At -h {}/{copy_dir}/run -p {} -d {physical} -c 'SELECT i FROM t ORDER BY i'",
                dir.root(),
                copy.port
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{}", String::from_utf8_lossy(&out.stderr));
    let w = h.admin.instance_recovery("pg-copy").await.unwrap();
    assert_eq!(w.archiving, ArchivingState::On);
}
