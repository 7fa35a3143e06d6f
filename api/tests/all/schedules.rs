//! Maintenance schedules: a slot fires exactly once across replicas; outside the instance's
//! maintenance window it waits; bad input is refused.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{Timelike, Utc};
use common::*;
use dbaas_client::*;

fn every_two_seconds(kind: ScheduleKind) -> CreateSchedule {
    CreateSchedule { kind, cron: "*/2 * * * * *".into(), tables: vec![], options: Default::default(), enabled: None }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_slot_fires_once_with_two_processes() {
    let mut h = Harness::start().await;
    h.spawn_api(ApiOptions::default()).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("app")).await;
    let s = a.create_schedule(db.id, &every_two_seconds(ScheduleKind::Analyze)).await.unwrap();
    assert!(s.next_run_at > Utc::now() - chrono::Duration::seconds(1));
    tokio::time::sleep(Duration::from_secs(9)).await;
    a.update_schedule(db.id, s.id, &UpdateSchedule { enabled: Some(false), ..Default::default() }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let mut c = h.state_db().await;
    let runs: Vec<(chrono::DateTime<Utc>, uuid::Uuid)> =
        sqlx::query_as("SELECT slot, operation_id FROM schedule_runs WHERE schedule_id = $1 ORDER BY slot")
            .bind(s.id)
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert!(runs.len() >= 3, "expected a run every 2 s, got {runs:?}");
    let slots: BTreeSet<_> = runs.iter().map(|r| r.0).collect();
    assert_eq!(slots.len(), runs.len());
    assert!(runs.iter().all(|r| r.0.second() % 2 == 0 && r.0.nanosecond() == 0), "{runs:?}");
    // One operation per slot — no duplicate from the second process — each run once.
    let ops = h.count("SELECT count(*) FROM operations WHERE kind = 'maintenance'").await;
    assert_eq!(ops as usize, runs.len());
    for (_, op) in &runs {
        let op = a.wait_operation(*op, Duration::from_secs(60)).await.unwrap();
        assert_eq!((op.status, op.attempts), (OperationStatus::Succeeded, 1), "{op:?}");
    }
    let logs = a.operation_logs(runs[0].1).await.unwrap();
    assert!(logs.iter().any(|l| l.message.starts_with("scheduled run for the slot of")), "{logs:?}");
    let shown = a.get_schedule(db.id, s.id).await.unwrap();
    assert_eq!(shown.last_run_at, runs.last().map(|r| r.0));
    assert!(!shown.enabled);
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_the_window_it_waits() {
    let h = Harness::start().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("app")).await;
    let now = Utc::now();
    let at = |m: u32| format!("{:02}:{:02}", (m / 60) % 24, m % 60);
    let minute = now.hour() * 60 + now.minute();
    let later = MaintenanceWindow { start: at(minute + 120), end: at(minute + 180) };
    h.admin.set_maintenance_window("main", Some(&later)).await.unwrap();
    let s = a.create_schedule(db.id, &every_two_seconds(ScheduleKind::Vacuum)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.count("SELECT count(*) FROM schedule_runs").await, 0, "ran outside the window");
    assert!(a.get_schedule(db.id, s.id).await.unwrap().next_run_at < Utc::now(), "the due slot should be waiting");

    // The window opens (now inside it): the waiting slot runs.
    let open = MaintenanceWindow { start: at(minute + 1440 - 60), end: at(minute + 120) };
    let inst = h.admin.set_maintenance_window("main", Some(&open)).await.unwrap();
    assert_eq!(inst.maintenance_window, Some(open));
    wait_until("a run inside the window", Duration::from_secs(20), || async {
        h.count("SELECT count(*) FROM schedule_runs").await >= 1
    })
    .await;
    a.delete_schedule(db.id, s.id).await.unwrap();
    assert_eq!(a.get_schedule(db.id, s.id).await.unwrap_err().status(), Some(404));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_schedules_are_refused() {
    let h = Harness::start().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("app")).await;
    for cron in ["", "every day", "61 * * * *", "* * * * * * * *"] {
        let mut req = every_two_seconds(ScheduleKind::Analyze);
        req.cron = cron.into();
        let e = a.create_schedule(db.id, &req).await.unwrap_err();
        assert_eq!(e.problem().unwrap().errors[0].field, "cron", "{cron:?}: {e}");
    }
    let mut req = every_two_seconds(ScheduleKind::Repack);
    req.tables = vec!["x y".into()];
    assert_eq!(a.create_schedule(db.id, &req).await.unwrap_err().problem().unwrap().errors[0].field, "tables[0]");
    let e = a
        .send::<_, Schedule>(
            reqwest::Method::POST,
            &format!("/v1/databases/{}/schedules", db.id),
            Some(&serde_json::json!({"kind": "defrag", "cron": "* * * * *"})),
            &[],
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.problem().unwrap().code, "invalid_body");
    // Windows: bad times, empty, tenants may not set them.
    for (s, e, field) in [("25:00", "03:00", "start"), ("01:00", "1:5", "end"), ("02:00", "02:00", "end")] {
        let err = h
            .admin
            .set_maintenance_window("main", Some(&MaintenanceWindow { start: s.into(), end: e.into() }))
            .await
            .unwrap_err();
        assert_eq!(err.problem().unwrap().errors[0].field, field, "{s}-{e}");
    }
    let w = MaintenanceWindow { start: "01:00".into(), end: "03:00".into() };
    assert_eq!(a.set_maintenance_window("main", Some(&w)).await.unwrap_err().status(), Some(403));
    // Another tenant's database: not found.
    let b = h.tenant("team-b").await;
    assert_eq!(
        b.create_schedule(db.id, &every_two_seconds(ScheduleKind::Analyze)).await.unwrap_err().status(),
        Some(404)
    );
    // (The backup policy gives the database its own schedules; none of the refused ones exist.)
    assert_eq!(h.count("SELECT count(*) FROM schedules WHERE origin = 'tenant'").await, 0);
    assert!(h.admin.get_instance("main").await.unwrap().maintenance_window.is_none());
}
