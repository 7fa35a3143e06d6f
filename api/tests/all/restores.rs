//! Restores in place and the backup lifecycle, against real PostgreSQL with the real
//! pg_dump/pg_restore: an in-place restore swaps in exactly the backup's data (per-table
//! checksums) while a session is open, keeps the previous database, applies the access model,
//! and the previous copy is dropped when its time is up; a delete takes a final backup first
//! that outlives the database and restores into a new one; policies give new databases
//! backup and drill schedules that fire, and bound a database's own retention.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::*;
use dbaas_client::*;

fn problem(e: &ClientError) -> &Problem {
    e.problem().unwrap_or_else(|| panic!("not a problem: {e}"))
}

async fn digest(c: &mut sqlx::PgConnection, table: &str) -> String {
    sqlx::query_scalar(&format!("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"))
        .fetch_one(c)
        .await
        .unwrap()
}

async fn succeeded(c: &Client, op: uuid::Uuid) -> Operation {
    let op = c.wait_operation(op, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_of(c, op.id).await);
    op
}

#[tokio::test(flavor = "multi_thread")]
async fn in_place_restore_swaps_in_the_backup_and_keeps_the_previous_database() {
    let h = Harness::in_process().await;
    let _store = with_store(&h).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("orders")).await;
    let admin = a.get_credential(db.id, Access::Admin).await.unwrap();
    let mut c = connect_as(&admin).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 400) g; \
         CREATE SCHEMA app; CREATE TABLE app.items (x int); INSERT INTO app.items VALUES (1), (2);",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let want = (digest(&mut c, "orders").await, digest(&mut c, "app.items").await);
    let acc = a.create_backup(db.id, &CreateBackup::default()).await.unwrap();
    succeeded(&a, acc.operation.id).await;
    let backup = acc.backup.id;

    // What happens after the backup: the restore must undo it.
    sqlx::raw_sql("DELETE FROM orders WHERE id > 100; DROP TABLE app.items; CREATE TABLE later (y int);")
        .execute(&mut c)
        .await
        .unwrap();
    let changed = digest(&mut c, "orders").await;

    // Bad input: nothing starts.
    let req = |target, name: Option<&str>| RestoreRequest {
        backup: Some(backup),
        time: None,
        target,
        name: name.map(str::to_string),
        retain_hours: None,
        grace: Some("1s".into()),
    };
    let e = a.restore_database(db.id, &req(RestoreTarget::InPlace, Some("x"))).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].field, "name");
    let zero = RestoreRequest { retain_hours: Some(0), ..req(RestoreTarget::InPlace, None) };
    let e = a.restore_database(db.id, &zero).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].field, "retain_hours");
    let unknown = RestoreRequest { backup: Some(uuid::Uuid::new_v4()), ..req(RestoreTarget::InPlace, None) };
    let e = a.restore_database(db.id, &unknown).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].code, "unknown_backup");
    let other = h.tenant("team-b").await;
    let e = other.restore_database(db.id, &req(RestoreTarget::InPlace, None)).await.unwrap_err();
    assert_eq!(problem(&e).status, 404);
    let theirs = h.ready_database(&other, db_req("mine")).await;
    let e = other.restore_database(theirs.id, &req(RestoreTarget::InPlace, None)).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].code, "unknown_backup", "another tenant's backup is unknown to them");
    let new = |name: Option<&str>| RestoreRequest { grace: None, ..req(RestoreTarget::New, name) };
    let e = a.restore_database(db.id, &new(None)).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].field, "name");
    let e = a.restore_database(db.id, &req(RestoreTarget::New, Some("x"))).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].field, "target", "grace is for in-place restores");
    let e = a.restore_database(db.id, &new(Some("orders"))).await.unwrap_err();
    assert_eq!(problem(&e).status, 409, "the name is taken: {e}");

    // A session stays open through the grace period, then is terminated.
    let acc = a.restore_database(db.id, &req(RestoreTarget::InPlace, None)).await.unwrap();
    assert_eq!(acc.database.id, db.id);
    let op = succeeded(&a, acc.operation.unwrap().id).await;
    let log = log_of(&a, op.id).await;
    assert!(log.contains("open session(s)") && log.contains("kept as"), "{log}");
    assert!(sqlx::query("SELECT 1").execute(&mut c).await.is_err(), "the old session was terminated");

    let after = a.get_database(db.id).await.unwrap();
    assert_eq!(after.status, DatabaseStatus::Ready);
    assert!(after.backups.previous_retained_until.unwrap() > chrono::Utc::now() + chrono::Duration::hours(23));
    let mut c = connect_as(&admin).await.unwrap();
    assert_eq!((digest(&mut c, "orders").await, digest(&mut c, "app.items").await), want);
    let later: bool = sqlx::query_scalar("SELECT to_regclass('public.later') IS NULL").fetch_one(&mut c).await.unwrap();
    assert!(later, "a table created after the backup is gone");
    // The access model holds on the restored objects.
    let mut w = connect_as(&a.get_credential(db.id, Access::Write).await.unwrap()).await.unwrap();
    sqlx::query("INSERT INTO app.items VALUES (3)").execute(&mut w).await.unwrap();
    let mut r = connect_as(&a.get_credential(db.id, Access::Read).await.unwrap()).await.unwrap();
    assert_eq!(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM app.items").fetch_one(&mut r).await.unwrap(), 3);
    assert_eq!(sqlstate(&sqlx::query("DELETE FROM orders").execute(&mut r).await.unwrap_err()), "42501");

    // The previous database is kept, with what it held, and nobody may connect to it.
    let kept = format!("{}_retained", db.physical_name);
    assert!(h.target_has_db(&kept).await);
    let mut old = h.target_db(&kept).await;
    assert_eq!(digest(&mut old, "orders").await, changed);
    drop(old);
    let uri = admin.uri.replace(&format!("/{}?", db.physical_name), &format!("/{kept}?"));
    assert_ne!(uri, admin.uri);
    assert!(connect_as(&Credential { uri, ..admin.clone() }).await.is_err(), "CONNECT on the kept copy is revoked");
    // The drift check still sees one database, ours.
    assert!(a.get_database_fresh(db.id).await.unwrap().drift.unwrap().is_clean());

    // Its time up, the lifecycle drops it.
    let mut st = h.state_db().await;
    sqlx::query("UPDATE databases SET retained_until = now() - interval '1 minute' WHERE id = $1")
        .bind(db.id)
        .execute(&mut st)
        .await
        .unwrap();
    wait_until("the retained copy is dropped", Duration::from_secs(60), || async { !h.target_has_db(&kept).await })
        .await;
    assert!(a.get_database(db.id).await.unwrap().backups.previous_retained_until.is_none());
    assert!(h.target_has_db(&db.physical_name).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_takes_a_final_backup_that_outlives_the_database() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("ledger")).await;
    // Asked for with no store serving the environment: refused, nothing dropped.
    let e = a.delete_database_with(db.id, false, Some(true)).await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).errors[0].code.as_str()), (422, "no_store"));
    assert_eq!(a.get_database(db.id).await.unwrap().status, DatabaseStatus::Ready);

    let _store = with_store(&h).await;
    let mut c = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 250);")
        .execute(&mut c)
        .await
        .unwrap();
    let want = digest(&mut c, "t").await;
    drop(c);
    let del = a.delete_database_with(db.id, false, Some(true)).await.unwrap();
    let op = succeeded(&a, del.operation.unwrap().id).await;
    assert!(log_of(&a, op.id).await.contains("final backup"));
    assert!(!h.target_has_db(&db.physical_name).await);

    // The tenant still lists it under the deleted database, and restores it as new.
    let backups = a.list_backups(db.id).await.unwrap();
    assert_eq!(backups.len(), 1);
    assert_eq!((backups[0].status, backups[0].reason), (BackupStatus::Succeeded, BackupReason::Final));
    let req = RestoreRequest {
        backup: Some(backups[0].id),
        time: None,
        target: RestoreTarget::New,
        name: Some("ledger-again".into()),
        retain_hours: None,
        grace: None,
    };
    let acc = a.restore_database(db.id, &req).await.unwrap();
    succeeded(&a, acc.operation.unwrap().id).await;
    let mut c = connect_as(&a.get_credential(acc.database.id, Access::Admin).await.unwrap()).await.unwrap();
    assert_eq!(digest(&mut c, "t").await, want);
    // In place needs a live database.
    let in_place = RestoreRequest { target: RestoreTarget::InPlace, name: None, ..req };
    let e = a.restore_database(db.id, &in_place).await.unwrap_err();
    assert_eq!(problem(&e).status, 409);
    // Another tenant sees none of it.
    let other = h.tenant("team-b").await;
    assert_eq!(problem(&other.list_backups(db.id).await.unwrap_err()).status, 404);

    // Without a final backup (sandbox's policy default), nothing is taken.
    let plain = h.ready_database(&a, db_req("scratch")).await;
    let del = a.delete_database(plain.id, false).await.unwrap();
    succeeded(&a, del.operation.unwrap().id).await;
    assert!(a.list_backups(plain.id).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_schedule_backups_and_drills_and_bound_retention() {
    let h = Harness::in_process().await;
    let _store = with_store(&h).await;
    let a = h.tenant("team-a").await;
    let policies = a.list_backup_policies().await.unwrap();
    let prod = policies.iter().find(|p| p.environment == Environment::Prod).unwrap();
    assert_eq!((prod.retention_days, prod.final_backup_on_delete), (35, true));
    assert!(prod.verify_cron.is_some());
    let sandbox = policies.iter().find(|p| p.environment == Environment::Sandbox).unwrap().clone();
    assert_eq!(sandbox.retention_days, 7);

    // Only admins change policies; bad ones are refused.
    let fast = BackupPolicy {
        backup_cron: Some("*/2 * * * * *".into()),
        verify_cron: Some("*/3 * * * * *".into()),
        ..sandbox.clone()
    };
    assert_eq!(problem(&a.put_backup_policy(&fast).await.unwrap_err()).status, 403);
    let bad = BackupPolicy { min_retention_days: 10, retention_days: 5, ..sandbox.clone() };
    assert_eq!(problem(&h.admin.put_backup_policy(&bad).await.unwrap_err()).status, 422);
    let bad = BackupPolicy { backup_cron: Some("every day".into()), ..sandbox.clone() };
    assert_eq!(problem(&h.admin.put_backup_policy(&bad).await.unwrap_err()).errors[0].field, "backup_cron");
    h.admin.put_backup_policy(&fast).await.unwrap();

    // A database's own retention stays within the bounds (sandbox: 1-90).
    let e = a.create_database(&CreateDatabase { backup_retention_days: Some(400), ..db_req("ledger") }).await;
    assert_eq!(problem(&e.unwrap_err()).errors[0].field, "backup_retention_days");
    let e = a.create_database(&CreateDatabase { backup_store: Some("nope".into()), ..db_req("ledger") }).await;
    assert_eq!(problem(&e.unwrap_err()).errors[0].field, "backup_store");
    let db = h.ready_database(&a, CreateDatabase { backup_retention_days: Some(3), ..db_req("ledger") }).await;
    assert_eq!(db.backups.retention_days, Some(3));

    // The policy's schedules appear, fire, and the drill verifies the latest backup.
    wait_until("policy schedules exist", Duration::from_secs(30), || async {
        a.list_schedules(db.id).await.unwrap().len() == 2
    })
    .await;
    let schedules = a.list_schedules(db.id).await.unwrap();
    let kinds: Vec<_> = schedules.iter().map(|s| (s.kind, s.origin.as_str())).collect();
    assert!(kinds.contains(&(ScheduleKind::Backup, "policy")) && kinds.contains(&(ScheduleKind::Verify, "policy")));
    wait_until("a scheduled backup succeeded and was drilled", Duration::from_secs(90), || async {
        let d = a.get_database(db.id).await.unwrap();
        d.backups.last_verify_status == Some(VerifyStatus::Passed)
    })
    .await;
    let backups = a.list_backups(db.id).await.unwrap();
    let scheduled = backups.iter().find(|b| b.reason == BackupReason::Scheduled && b.status == BackupStatus::Succeeded);
    let b = scheduled.unwrap();
    // Its retention is the database's own: 3 days.
    let days = (b.expires_at.unwrap() - b.created_at).num_hours();
    assert!((71..=73).contains(&days), "{days} hours");
    // The tenant may turn the policy's schedule off.
    for s in &schedules {
        let upd = UpdateSchedule { enabled: Some(false), ..Default::default() };
        a.update_schedule(db.id, s.id, &upd).await.unwrap();
    }
    // A backup or drill schedule takes no tables or options.
    let bad = CreateSchedule {
        kind: ScheduleKind::Backup,
        cron: "0 3 * * *".into(),
        tables: vec!["public.t".into()],
        options: MaintenanceOptions::default(),
        enabled: None,
    };
    assert_eq!(problem(&a.create_schedule(db.id, &bad).await.unwrap_err()).errors[0].field, "tables");
}
