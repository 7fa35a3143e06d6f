//! Point-in-time recovery on a managed instance with the real pgBackRest: archiving set up at
//! provisioning, the first full base backup, the recovery window, and one database restored to
//! a second between two commits (into a new database and in place) while a neighbour on the
//! same instance keeps every row; targets outside the window are 422s before anything runs.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::hosts::*;
use common::portal::{portal_get, portal_post, sign_in};
use common::*;
use dbaas_client::*;

async fn rows(c: &Client, db: uuid::Uuid, table: &str) -> Vec<i32> {
    let cred = c.get_credential(db, Access::Admin).await.unwrap();
    let mut conn = connect_as(&cred).await.unwrap();
    sqlx::query_scalar(&format!("SELECT i FROM {table} ORDER BY i")).fetch_all(&mut conn).await.unwrap()
}

async fn insert(c: &Client, db: uuid::Uuid, sql: &str) -> DateTime<Utc> {
    let cred = c.get_credential(db, Access::Admin).await.unwrap();
    let mut conn = connect_as(&cred).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&mut conn).await.unwrap()
}

async fn succeeded(c: &Client, op: uuid::Uuid) -> Operation {
    let op = c.wait_operation(op, Duration::from_secs(240)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_of(c, op.id).await);
    op
}

/// Waits until the database's window reaches `time`.
async fn window_reaching(c: &Client, db: uuid::Uuid, time: DateTime<Utc>) -> DatabaseRecoveryWindow {
    let start = Instant::now();
    loop {
        let w = c.database_recovery(db).await.unwrap();
        if w.latest.is_some_and(|l| l >= time) {
            return w;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "the window never reached {time}: {w:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_database_restored_to_a_second_new_and_in_place_while_its_neighbour_keeps_every_row() {
    let h = Harness::start().await;
    let _store = with_store(&h).await;
    let (dir, _host) = local_host(&h, "pitr-box", [25800, 25819]).await;
    let a = h.tenant("team-a").await;
    let req = CreateInstance { settings: settings(&[("archive_timeout", "2s")]), ..managed("pg-pitr", "pitr-box") };
    h.admin.create_instance(&req).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-pitr").await;
    assert_eq!((op.status, inst.status), (OperationStatus::Succeeded, InstanceStatus::Ready));
    let log = log_text(&h.admin, op.id).await;
    assert!(log.contains("pgBackRest stanza pg-pitr") && log.contains("WAL archiving works"), "{log}");

    let orders = h
        .ready_database(
            &a,
            CreateDatabase { name: "orders".into(), instance: Some("pg-pitr".into()), ..Default::default() },
        )
        .await;
    let other = h
        .ready_database(
            &a,
            CreateDatabase { name: "other".into(), instance: Some("pg-pitr".into()), ..Default::default() },
        )
        .await;

    // The first full base backup (queued after provisioning) opens the window.
    let start = Instant::now();
    let window = loop {
        let w = h.admin.instance_recovery("pg-pitr").await.unwrap();
        if w.earliest.is_some() {
            break w;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no base backup: {w:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(window.archiving, ArchivingState::On);
    assert_eq!(window.base_backups.len(), 1, "{window:?}");
    assert_eq!(window.base_backups[0].kind, BaseBackupKind::Full);
    let archive = window.archive.clone().unwrap();
    assert!(archive.archived_count > 0 && archive.failed_count == 0, "{archive:?}");

    // Two commits on each database, a moment `t` between them.
    insert(&a, orders.id, "CREATE TABLE t (i int); INSERT INTO t VALUES (1)").await;
    insert(&a, other.id, "CREATE TABLE n (i int); INSERT INTO n VALUES (1)").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = insert(&a, orders.id, "SELECT 1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    insert(&a, orders.id, "INSERT INTO t VALUES (2)").await;
    insert(&a, other.id, "INSERT INTO n VALUES (2)").await;
    let w = window_reaching(&a, orders.id, t).await;
    assert_eq!(w.archiving, ArchivingState::On);
    assert!(w.earliest.unwrap() >= orders.created_at, "{w:?}");

    // Outside the window, both a backup and a time, neither: 422s naming the field.
    let at = |time: DateTime<Utc>, target: RestoreTarget, name: Option<&str>| RestoreRequest {
        backup: None,
        time: Some(time),
        target,
        name: name.map(str::to_string),
        retain_hours: None,
        grace: (target == RestoreTarget::InPlace).then(|| "1s".to_string()),
    };
    for (req, code) in [
        (at(w.earliest.unwrap() - chrono::Duration::hours(1), RestoreTarget::InPlace, None), "outside_window"),
        (at(Utc::now() + chrono::Duration::hours(1), RestoreTarget::InPlace, None), "outside_window"),
        (RestoreRequest { backup: Some(uuid::Uuid::new_v4()), ..at(t, RestoreTarget::InPlace, None) }, "conflict"),
    ] {
        let e = a.restore_database(orders.id, &req).await.unwrap_err();
        let p = problem(&e);
        assert_eq!((p.status, p.errors[0].field.as_str(), p.errors[0].code.as_str()), (422, "time", code), "{p:?}");
    }
    let none = RestoreRequest { time: None, ..at(t, RestoreTarget::InPlace, None) };
    let e = a.restore_database(orders.id, &none).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].code, "required");
    let outside =
        a.restore_database(orders.id, &at(Utc::now() + chrono::Duration::hours(1), RestoreTarget::InPlace, None)).await;
    assert!(problem(&outside.unwrap_err()).errors[0].message.contains("outside the recovery window"));

    // Into a new database: exactly the rows committed up to `t`.
    let acc = a.restore_database(orders.id, &at(t, RestoreTarget::New, Some("orders-at-t"))).await.unwrap();
    let op = succeeded(&a, acc.operation.unwrap().id).await;
    let log = log_of(&a, op.id).await;
    assert!(log.contains("scratch cluster") && log.contains("parts: repository restore"), "{log}");
    assert_eq!(rows(&a, acc.database.id, "t").await, vec![1]);

    // In place: the same, and the neighbour keeps both rows.
    let acc = a.restore_database(orders.id, &at(t, RestoreTarget::InPlace, None)).await.unwrap();
    succeeded(&a, acc.operation.unwrap().id).await;
    assert_eq!(rows(&a, orders.id, "t").await, vec![1]);
    assert_eq!(rows(&a, other.id, "n").await, vec![1, 2]);

    // Each restore recorded the backup it made, with its time.
    let pitr: Vec<Backup> = a
        .list_backups(orders.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.reason == BackupReason::PointInTime)
        .collect();
    assert_eq!(pitr.len(), 2, "{pitr:?}");
    for b in &pitr {
        assert_eq!((b.status, b.recovery_target), (BackupStatus::Succeeded, Some(t)), "{b:?}");
    }
    // Nothing of the scratch clusters is left on the host.
    let left: Vec<String> = std::fs::read_dir(dir.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pitr-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A drill: the archive's end restored, started and checked, then shown and exported.
    let op = h.admin.create_pitr_drill("pg-pitr").await.unwrap();
    succeeded(&h.admin, op.id).await;
    let drill = h.admin.instance_recovery("pg-pitr").await.unwrap().last_drill.unwrap();
    assert!(drill.passed && drill.restore_ms.unwrap() > 0, "{drill:?}");
    assert!(drill.recovery_point.unwrap() > t, "the drill reached {:?}, before {t}", drill.recovery_point);
    let start = Instant::now();
    loop {
        let r = reqwest::Client::new()
            .get(format!("{}/v1/prometheus/instances/pg-pitr/metrics", h.endpoint()))
            .bearer_auth(&h.admin_token)
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        let want = [
            "pg_stat_archiver_archived_count ",
            "pg_stat_archiver_failed_count 0",
            "dbaas_pitr_recovery_point_age_seconds ",
            "dbaas_pitr_drill_passed 1",
            "dbaas_pitr_archive_timeout_seconds 2",
        ];
        if want.iter().all(|w| body.contains(w)) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "missing point-in-time metrics in\n{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The portal: the database's window and a restore to a time through its form; the
    // instance's page with its base backups and drill.
    let session = sign_in(h.endpoint(), a.token()).await;
    let page =
        portal_get(h.endpoint(), &session, &format!("/portal/databases/{}", orders.id)).await.text().await.unwrap();
    assert!(
        page.contains("Point-in-time recovery") && page.contains("<svg") && page.contains("restore-to-time"),
        "{page}"
    );
    let csrf = common::portal::csrf_of(&page);
    let when = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let path = format!("/portal/databases/{}/restore-to-time", orders.id);
    let form = [("_csrf", csrf.as_str()), ("time", when.as_str()), ("target", "new"), ("name", "orders-portal")];
    let r = portal_post(h.endpoint(), &session, &path, &form).await;
    assert_eq!(r.status(), 303);
    let op: uuid::Uuid = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().parse().unwrap();
    succeeded(&a, op).await;
    let restored = a.list_databases("").await.unwrap().into_iter().find(|d| d.name == "orders-portal").unwrap();
    assert_eq!(rows(&a, restored.id, "t").await, vec![1]);
    let admin = sign_in(h.endpoint(), &h.admin_token).await;
    let page = portal_get(h.endpoint(), &admin, "/portal/admin/instances/pg-pitr").await.text().await.unwrap();
    assert!(page.contains("base-backup-table") && page.contains("drill-result") && page.contains("passed"), "{page}");
    assert_eq!(portal_get(h.endpoint(), &session, "/portal/admin/instances/pg-pitr").await.status(), 403);

    // A base backup on demand: a differential one joins the window.
    let op = h.admin.create_base_backup("pg-pitr", BaseBackupKind::Diff).await.unwrap();
    succeeded(&h.admin, op.id).await;
    let w = h.admin.instance_recovery("pg-pitr").await.unwrap();
    assert_eq!(
        w.base_backups.iter().map(|b| b.kind).collect::<Vec<_>>(),
        vec![BaseBackupKind::Full, BaseBackupKind::Diff]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_environment_policy_times_base_backups_and_drills() {
    let h = Harness::start().await;
    let (_dir, _host) = local_host(&h, "sched-box", [25820, 25839]).await;
    // Every minute, for the test (the shipped policies: daily differential backups, daily or
    // weekly drills).
    let mut state = h.state_db().await;
    sqlx::query(
        "UPDATE pitr_policies SET diff_cron = '* * * * *', drill_cron = '* * * * *' WHERE environment = 'sandbox'",
    )
    .execute(&mut state)
    .await
    .unwrap();
    h.admin.create_instance(&managed("pg-sched", "sched-box")).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-sched").await;
    assert_eq!(op.status, OperationStatus::Succeeded);
    let done = |kind: &'static str| {
        let sql = format!(
            "SELECT count(*) FROM operations WHERE target_id = '{}' AND kind = '{kind}' AND status = 'succeeded' \
             AND params->>'reason' = 'the environment''s point-in-time policy'",
            inst.id
        );
        let h = &h;
        async move { h.count(&sql).await >= 1 }
    };
    wait_until("a scheduled differential backup and a scheduled drill", Duration::from_secs(180), || async {
        done("base_backup").await && done("pitr_drill").await
    })
    .await;
    let w = h.admin.instance_recovery("pg-sched").await.unwrap();
    assert!(w.base_backups.iter().any(|b| b.kind == BaseBackupKind::Diff), "{w:?}");
    assert!(w.last_drill.as_ref().is_some_and(|d| d.passed), "{:?}", w.last_drill);
    // A slot becomes one operation: never two of a kind in the same minute.
    let twice = h
        .count(&format!(
            "SELECT count(*) FROM (SELECT kind, date_trunc('minute', created_at) FROM operations WHERE target_id = '{}' \
             AND params->>'reason' = 'the environment''s point-in-time policy' GROUP BY 1, 2 HAVING count(*) > 1) x",
            inst.id
        ))
        .await;
    assert_eq!(twice, 0);
}
