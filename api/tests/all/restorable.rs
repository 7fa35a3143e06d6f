//! Every database restorable: on an instance registered as users get it (`verify-full` with
//! its CA, nothing in `HOME`), a repacked database's later backups drill and restore (new and
//! in place), and pg_repack is gone from it; an extension its admin could not create again
//! fails the backup instead of yielding a "good" backup that restores nothing; tables with
//! forced row security are backed up whole and restored with their policies; a deleted
//! database's final backup is drilled with roles of the drill's own; an in-place restore is
//! undone while the previous database is kept.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::*;
use dbaas_client::*;
use sqlx::PgConnection;

async fn ended(c: &Client, op: uuid::Uuid) -> (Operation, String) {
    let op = c.wait_operation(op, Duration::from_secs(180)).await.unwrap();
    let log = log_of(c, op.id).await;
    (op, log)
}

async fn succeeded(c: &Client, op: uuid::Uuid) -> String {
    let (op, log) = ended(c, op).await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{log}");
    log
}

async fn scalar_i64(c: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(c).await.unwrap()
}

async fn extensions(h: &Harness, db: &str) -> Vec<String> {
    let mut c = h.target_db(db).await;
    sqlx::query_scalar("SELECT extname::text FROM pg_extension ORDER BY 1").fetch_all(&mut c).await.unwrap()
}

/// Backs up `db`, drills the backup, and returns it.
async fn backup_and_drill(c: &Client, db: uuid::Uuid) -> Backup {
    let acc = c.create_backup(db, &CreateBackup::default()).await.unwrap();
    succeeded(c, acc.operation.id).await;
    let drill = c.verify_backup(acc.backup.id).await.unwrap();
    let log = succeeded(c, drill.operation.id).await;
    let b = c.get_backup(acc.backup.id).await.unwrap();
    assert_eq!(b.verify_status, Some(VerifyStatus::Passed), "{b:?}\n{log}");
    b
}

fn restore(backup: uuid::Uuid, target: RestoreTarget, name: Option<&str>) -> RestoreRequest {
    let grace = (target == RestoreTarget::InPlace).then(|| "1s".to_string());
    RestoreRequest {
        backup: Some(backup),
        time: None,
        target,
        name: name.map(str::to_string),
        retain_hours: None,
        grace,
    }
}

/// Repacks a bloated table of a new database on `instance`, checks pg_repack is gone from it,
/// then backs up, drills, and restores new and in place.
async fn repack_backup_drill_restore(h: &Harness, a: &Client, instance: &str) {
    let db = h.ready_database(a, CreateDatabase { instance: Some(instance.into()), ..db_req("orders") }).await;
    let mut admin = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 30000) g; \
         DELETE FROM orders WHERE id % 4 <> 0; ANALYZE orders;",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let req = CreateMaintenance {
        kind: MaintenanceKind::Repack,
        tables: vec![],
        options: MaintenanceOptions { bloat_threshold_percent: Some(10.0), ..Default::default() },
    };
    let acc = a.start_maintenance(db.id, &req).await.unwrap();
    let log = succeeded(a, acc.operation.id).await;
    assert!(log.contains("public.orders: repacked"), "{log}");
    assert!(log.contains("removed the service's extension(s)"), "{log}");
    // The catalog is readable by the tenant: what is left in its database.
    let left: Vec<String> =
        sqlx::query_scalar("SELECT extname::text FROM pg_extension ORDER BY 1").fetch_all(&mut admin).await.unwrap();
    assert!(!left.iter().any(|e| e == "pg_repack" || e == "pgstattuple"), "{left:?}");

    let b = backup_and_drill(a, db.id).await;
    sqlx::raw_sql("DELETE FROM orders WHERE id < 1000").execute(&mut admin).await.unwrap();
    drop(admin);
    let acc = a.restore_database(db.id, &restore(b.id, RestoreTarget::New, Some("orders-copy"))).await.unwrap();
    succeeded(a, acc.operation.unwrap().id).await;
    let acc = a.restore_database(db.id, &restore(b.id, RestoreTarget::InPlace, None)).await.unwrap();
    succeeded(a, acc.operation.unwrap().id).await;
    let mut admin = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    assert_eq!(scalar_i64(&mut admin, "SELECT count(*) FROM orders").await, 7500);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repacked_database_backs_up_drills_and_restores_on_a_verify_full_instance() {
    let h = Harness::in_process().await;
    let _store = with_store(&h).await;
    let inst = h.admin.get_instance("main").await.unwrap();
    assert_eq!(inst.sslmode, SslMode::VerifyFull, "the harness registers instances as dev does");
    let a = h.tenant("team-a").await;
    repack_backup_drill_restore(&h, &a, "main").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_on_a_managed_instance() {
    let h = Harness::in_process().await;
    let _store = with_store(&h).await;
    let (_dir, _host) = common::hosts::local_host(&h, "box-r", [25700, 25709]).await;
    h.admin.create_instance(&common::hosts::managed("pg-r", "box-r")).await.unwrap();
    let (op, inst) = common::hosts::settle(&h.admin, "pg-r").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert_eq!(inst.sslmode, SslMode::VerifyFull);
    let a = h.tenant("team-a").await;
    repack_backup_drill_restore(&h, &a, "pg-r").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_tenant_admin_could_not_restore_never_makes_a_good_backup() {
    let h = Harness::in_process().await;
    let _store = with_store(&h).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("orders")).await;
    let mut admin = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);").execute(&mut admin).await.unwrap();

    // What an interrupted repack leaves (marked, as the service marks what it creates): the
    // backup removes it first, and is good.
    let mut su = h.target_db(&db.physical_name).await;
    sqlx::raw_sql(
        "CREATE EXTENSION pg_repack; CREATE EXTENSION pgstattuple SCHEMA repack; \
         COMMENT ON EXTENSION pg_repack IS 'dbaas:service-extension'; \
         COMMENT ON EXTENSION pgstattuple IS 'dbaas:service-extension'",
    )
    .execute(&mut su)
    .await
    .unwrap();
    backup_and_drill(&a, db.id).await;
    assert!(!extensions(&h, &db.physical_name).await.iter().any(|e| e == "pg_repack" || e == "pgstattuple"));

    // An untrusted extension the service did not make (even pg_repack, installed by a
    // superuser on purpose, unmarked): left alone, and the backup fails and says why.
    sqlx::raw_sql("CREATE EXTENSION pgstattuple").execute(&mut su).await.unwrap();
    let acc = a.create_backup(db.id, &CreateBackup::default()).await.unwrap();
    let (op, log) = ended(&a, acc.operation.id).await;
    assert_eq!(op.status, OperationStatus::Failed, "{log}");
    let err = op.error.unwrap();
    assert_eq!(err.code, "backup_unrestorable", "{err:?}");
    assert!(err.message.contains("pgstattuple"), "{}", err.message);
    assert_eq!(a.get_backup(acc.backup.id).await.unwrap().status, BackupStatus::Failed);
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_with_forced_row_security_are_backed_up_whole_and_restored_with_their_policies() {
    let h = Harness::in_process().await;
    let _store = with_store(&h).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("saas")).await;
    let admin_cred = a.get_credential(db.id, Access::Admin).await.unwrap();
    let mut admin = connect_as(&admin_cred).await.unwrap();
    // The policy hides every row of tenant 2 from the admin role (the table's owner).
    sqlx::raw_sql(
        "CREATE TABLE docs (id int PRIMARY KEY, tenant int NOT NULL, body text); \
         INSERT INTO docs SELECT g, 1 + g % 2, md5(g::text) FROM generate_series(1, 100) g; \
         ALTER TABLE docs ENABLE ROW LEVEL SECURITY; ALTER TABLE docs FORCE ROW LEVEL SECURITY; \
         CREATE POLICY only_one ON docs USING (tenant = 1);",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    assert_eq!(scalar_i64(&mut admin, "SELECT count(*) FROM docs").await, 50);
    drop(admin);

    let b = backup_and_drill(&a, db.id).await;
    let rows = b.manifest.as_ref().unwrap().tables.iter().find(|t| t.table == "public.docs").unwrap().rows;
    assert_eq!(rows, 100, "the manifest counts every row");

    let h = &h;
    let check = |name: String| async move {
        let mut su = h.target_db(&name).await;
        assert_eq!(scalar_i64(&mut su, "SELECT count(*) FROM docs").await, 100, "every row back in {name}");
        let forced: (bool, bool) = sqlx::query_as(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'public.docs'::regclass",
        )
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(forced, (true, true));
        assert_eq!(scalar_i64(&mut su, "SELECT count(*) FROM pg_policies WHERE policyname = 'only_one'").await, 1);
    };
    let acc = a.restore_database(db.id, &restore(b.id, RestoreTarget::New, Some("saas-copy"))).await.unwrap();
    let op = acc.operation.unwrap().id;
    succeeded(&a, op).await;
    let copy = acc.database;
    check(copy.physical_name.clone()).await;
    let mut copy_admin = connect_as(&a.get_credential(copy.id, Access::Admin).await.unwrap()).await.unwrap();
    assert_eq!(scalar_i64(&mut copy_admin, "SELECT count(*) FROM docs").await, 50, "the policy still applies");

    let acc = a.restore_database(db.id, &restore(b.id, RestoreTarget::InPlace, None)).await.unwrap();
    succeeded(&a, acc.operation.unwrap().id).await;
    check(db.physical_name.clone()).await;
    let mut admin = connect_as(&admin_cred).await.unwrap();
    assert_eq!(scalar_i64(&mut admin, "SELECT count(*) FROM docs").await, 50, "the policy still applies");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_databases_final_backup_is_drilled_with_roles_of_its_own() {
    let h = Harness::in_process().await;
    let _store = with_store(&h).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, CreateDatabase { mode: Some(DatabaseMode::Protected), ..db_req("ledger") }).await;
    let mut admin = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    // A policy naming the database's own roles: the drill must restore it with them gone.
    let read_role = format!("{}_read", db.physical_name);
    sqlx::raw_sql(&format!(
        "CREATE TABLE entries (id int PRIMARY KEY, amount numeric); \
         INSERT INTO entries SELECT g, g * 1.5 FROM generate_series(1, 300) g; \
         ALTER TABLE entries ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY readers ON entries FOR SELECT TO \"{read_role}\" USING (amount < 100);"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    drop(admin);
    let del = h.admin.delete_database_with(db.id, true, Some(true)).await.unwrap();
    succeeded(&h.admin, del.operation.unwrap().id).await;
    assert!(h.target_roles_like(&format!("{}%", db.physical_name)).await.is_empty());

    let final_backup = a.list_backups(db.id).await.unwrap().into_iter().find(|b| b.reason == BackupReason::Final);
    let final_backup = final_backup.expect("the final backup is listed to its tenant");
    let drill = a.verify_backup(final_backup.id).await.unwrap();
    let log = succeeded(&a, drill.operation.id).await;
    let b = a.get_backup(final_backup.id).await.unwrap();
    assert_eq!(b.verify_status, Some(VerifyStatus::Passed), "{log}");
    // Nothing of the drill stays: no scratch database, no scratch or stand-in role.
    assert!(!h.target_has_db(&format!("{}_verify", db.physical_name)).await);
    assert!(h.target_roles_like(&format!("{}%", db.physical_name)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_in_place_restore_is_undone_while_the_previous_database_is_kept() {
    let h = Harness::in_process().await;
    let _store = with_store(&h).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("orders")).await;
    let admin_cred = a.get_credential(db.id, Access::Admin).await.unwrap();
    let mut admin = connect_as(&admin_cred).await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 10);")
        .execute(&mut admin)
        .await
        .unwrap();
    let acc = a.create_backup(db.id, &CreateBackup::default()).await.unwrap();
    succeeded(&a, acc.operation.id).await;
    let backup = acc.backup.id;

    // Nothing to undo before any in-place restore.
    let e = a.undo_restore(db.id, &UndoRestore::default()).await.unwrap_err();
    assert_eq!(e.problem().map(|p| (p.status, p.code.clone())), Some((409, "nothing_to_undo".into())));
    let bad = UndoRestore { grace: Some("2h".into()) };
    let e = a.undo_restore(db.id, &bad).await.unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "grace");

    // Written after the backup: an in-place restore loses it, the undo brings it back.
    sqlx::raw_sql("INSERT INTO t SELECT generate_series(11, 25)").execute(&mut admin).await.unwrap();
    drop(admin);
    let acc = a.restore_database(db.id, &restore(backup, RestoreTarget::InPlace, None)).await.unwrap();
    succeeded(&a, acc.operation.unwrap().id).await;
    let mut admin = connect_as(&admin_cred).await.unwrap();
    assert_eq!(scalar_i64(&mut admin, "SELECT count(*) FROM t").await, 10);
    drop(admin);

    // Another tenant cannot undo it, nor learn that the database exists.
    let b = h.tenant("team-b").await;
    let e = b.undo_restore(db.id, &UndoRestore::default()).await.unwrap_err();
    assert_eq!(e.problem().unwrap().status, 404);

    let acc = a.undo_restore(db.id, &UndoRestore { grace: Some("1s".into()) }).await.unwrap();
    assert_eq!(acc.database.status, DatabaseStatus::Updating);
    let log = succeeded(&a, acc.operation.unwrap().id).await;
    assert!(log.contains("the database from before the restore again"), "{log}");
    let after = a.get_database(db.id).await.unwrap();
    assert_eq!(after.status, DatabaseStatus::Ready);
    let mut admin = connect_as(&admin_cred).await.unwrap();
    assert_eq!(scalar_i64(&mut admin, "SELECT count(*) FROM t").await, 25, "the writes after the backup are back");
    // Every role works on the database it has again (privileges and access model applied).
    let mut write = connect_as(&a.get_credential(db.id, Access::Write).await.unwrap()).await.unwrap();
    sqlx::raw_sql("INSERT INTO t VALUES (26)").execute(&mut write).await.unwrap();
    // The restored one is kept in its stead: undoing again swaps it back in.
    let kept = format!("{}_retained", db.physical_name);
    assert!(h.target_has_db(&kept).await);
    drop((admin, write));
    let acc = a.undo_restore(db.id, &UndoRestore { grace: Some("1s".into()) }).await.unwrap();
    succeeded(&a, acc.operation.unwrap().id).await;
    let mut admin = connect_as(&admin_cred).await.unwrap();
    assert_eq!(scalar_i64(&mut admin, "SELECT count(*) FROM t").await, 10);
}

/// Databases repacked before repacks cleaned up after themselves: the migration enqueues one
/// `remove_service_extensions` operation for each (and none for the others), which removes
/// what was left.
#[tokio::test(flavor = "multi_thread")]
async fn the_migration_cleans_databases_repacked_before() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let repacked = h.ready_database(&a, db_req("old")).await;
    let untouched = h.ready_database(&a, db_req("other")).await;
    let acc = a
        .start_maintenance(
            repacked.id,
            &CreateMaintenance { kind: MaintenanceKind::Repack, tables: vec![], options: Default::default() },
        )
        .await
        .unwrap();
    succeeded(&a, acc.operation.id).await;
    // What a repack used to leave behind.
    let mut su = h.target_db(&repacked.physical_name).await;
    sqlx::raw_sql("CREATE EXTENSION pg_repack; CREATE EXTENSION pgstattuple SCHEMA repack")
        .execute(&mut su)
        .await
        .unwrap();

    // The migration's statement as it stands in the file, run on this test's state database
    // (migrated already, without these rows).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let file = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("_service_extensions.sql"))
        .unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    let insert = &text[text.find("INSERT INTO operations").unwrap()..];
    let mut state = h.state_db().await;
    sqlx::raw_sql(insert).execute(&mut state).await.unwrap();
    let queued: Vec<(uuid::Uuid, uuid::Uuid)> =
        sqlx::query_as("SELECT id, target_id FROM operations WHERE kind = 'remove_service_extensions'")
            .fetch_all(&mut state)
            .await
            .unwrap();
    assert_eq!(queued.iter().map(|q| q.1).collect::<Vec<_>>(), vec![repacked.id], "only the repacked database");
    assert_ne!(untouched.id, repacked.id);
    let log = succeeded(&a, queued[0].0).await;
    assert!(log.contains("removed the service's extension(s) pgstattuple, pg_repack"), "{log}");
    let left = extensions(&h, &repacked.physical_name).await;
    assert!(!left.iter().any(|e| e == "pg_repack" || e == "pgstattuple"), "{left:?}");
}

/// The table's owner can define a cast of its row type to text: the manifest's checksums
/// read rows without it (it would run as the backup login, which reads everything), in the
/// backup, the drill and the in-place restore's check alike.
#[tokio::test(flavor = "multi_thread")]
async fn a_cast_the_tenant_defines_for_its_rows_is_never_called() {
    let h = Harness::in_process().await;
    let _store = with_store(&h).await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("orders")).await;
    let mut admin = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 50) g; \
         CREATE FUNCTION public.evil(public.orders) RETURNS text LANGUAGE plpgsql AS $$ BEGIN \
           RAISE EXCEPTION 'tenant cast ran as %', current_user; END $$; \
         CREATE CAST (public.orders AS text) WITH FUNCTION public.evil(public.orders);",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    // The cast is real: the tenant's own query calls it.
    let e = sqlx::query_scalar::<_, String>("SELECT o::text FROM orders o LIMIT 1").fetch_one(&mut admin).await;
    assert!(e.unwrap_err().to_string().contains("tenant cast ran as"));
    drop(admin);
    let b = backup_and_drill(&a, db.id).await;
    let acc = a.restore_database(db.id, &restore(b.id, RestoreTarget::InPlace, None)).await.unwrap();
    succeeded(&a, acc.operation.unwrap().id).await;
}
