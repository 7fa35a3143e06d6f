//! Maintenance with the real pg_repack: shrinking bloat online, prechecks, cancel cleanup,
//! VACUUM/ANALYZE/REINDEX, bad input.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dbaas_client::*;
use sqlx::{Executor, PgConnection};

const WAIT: Duration = Duration::from_secs(120);

async fn setup(h: &Harness) -> (Client, Database, PgConnection) {
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("shop")).await;
    let admin = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    (a, db, admin)
}

/// A table with `rows` rows of which 90% are then deleted (autovacuum off, so they stay).
async fn bloated(c: &mut PgConnection, name: &str, rows: i64, key: bool) {
    let pk = if key { "PRIMARY KEY" } else { "" };
    c.execute(
        format!(
            "CREATE TABLE {name} (id bigint {pk}, payload text, concurrent boolean NOT NULL DEFAULT false) \
             WITH (autovacuum_enabled = false);
             INSERT INTO {name} (id, payload) SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, {rows}) i;
             DELETE FROM {name} WHERE id % 10 <> 0;"
        )
        .as_str(),
    )
    .await
    .unwrap();
    // Statistics (dead tuples) are published when the session flushes them: now, not later.
    c.execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    c.execute("SELECT 1").await.unwrap();
}

async fn checksum(c: &mut PgConnection, table: &str) -> String {
    sqlx::query_scalar(&format!(
        "SELECT md5(string_agg(id::text || payload, ',' ORDER BY id)) FROM {table} WHERE NOT concurrent"
    ))
    .fetch_one(c)
    .await
    .unwrap()
}

async fn size(h: &Harness, table: &str) -> i64 {
    let mut su = h.target_db("team-a_shop").await;
    sqlx::query_scalar(&format!("SELECT pg_total_relation_size('{table}')")).fetch_one(&mut su).await.unwrap()
}

async fn repack_leftovers(h: &Harness) -> (i64, i64, i64) {
    let mut su = h.target_db("team-a_shop").await;
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'repack' AND c.relkind = 'r'), \
                (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'repack_trigger%'), \
                (SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dbaas-repack-%')",
    )
    .fetch_one(&mut su)
    .await
    .unwrap()
}

fn repack(tables: &[&str], threshold: f64) -> CreateMaintenance {
    CreateMaintenance {
        kind: MaintenanceKind::Repack,
        tables: tables.iter().map(|t| t.to_string()).collect(),
        options: MaintenanceOptions { bloat_threshold_percent: Some(threshold), ..Default::default() },
    }
}

async fn run(a: &Client, db: &Database, req: &CreateMaintenance) -> (Operation, Vec<String>) {
    let acc = a.start_maintenance(db.id, req).await.unwrap();
    let op = a.wait_operation(acc.operation.id, WAIT).await.unwrap();
    let logs = a.operation_logs(op.id).await.unwrap().into_iter().map(|l| l.message).collect();
    (op, logs)
}

#[tokio::test(flavor = "multi_thread")]
async fn repack_shrinks_bloat_online_and_keeps_rows() {
    let h = Harness::start().await;
    let (a, db, mut admin) = setup(&h).await;
    bloated(&mut admin, "public.orders", 200_000, true).await;
    let before_sum = checksum(&mut admin, "public.orders").await;
    let before = size(&h, "public.orders").await;

    // Another connection keeps reading and writing during the repack.
    let stop = Arc::new(AtomicBool::new(false));
    let (writes, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut traffic = connect_as(&a.get_credential(db.id, Access::Write).await.unwrap()).await.unwrap();
    let t = {
        let (stop, writes, errors) = (stop.clone(), writes.clone(), errors.clone());
        tokio::spawn(async move {
            let mut next = 1_000_000i64;
            while !stop.load(Ordering::SeqCst) {
                next += 1;
                let w = sqlx::query("INSERT INTO public.orders (id, payload, concurrent) VALUES ($1, 'live', true)")
                    .bind(next)
                    .execute(&mut traffic)
                    .await;
                let r = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM public.orders WHERE id % 100 = 0")
                    .fetch_one(&mut traffic)
                    .await;
                match (w, r) {
                    (Ok(_), Ok(_)) => {
                        writes.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let (op, logs) = run(&a, &db, &repack(&["public.orders"], 20.0)).await;
    stop.store(true, Ordering::SeqCst);
    t.await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{logs:#?}");

    let after = size(&h, "public.orders").await;
    assert!(after * 2 < before, "size {before} -> {after}: expected to shrink by more than half");
    assert_eq!(checksum(&mut admin, "public.orders").await, before_sum, "rows changed");
    assert_eq!(errors.load(Ordering::SeqCst), 0, "concurrent reads/writes failed during the repack");
    let written = writes.load(Ordering::SeqCst) as i64;
    assert!(written > 0);
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM public.orders WHERE concurrent").fetch_one(&mut admin).await.unwrap();
    assert_eq!(kept, written, "rows written during the repack must all be there");
    assert!(logs.iter().any(|l| l.starts_with("public.orders: bloat ") && l.contains("repacking")), "{logs:#?}");
    assert!(logs.iter().any(|l| l.starts_with("public.orders: repacked, size")), "{logs:#?}");
    assert!(logs.iter().any(|l| l.contains("free disk on an external instance cannot be checked")), "{logs:#?}");
    assert_eq!(repack_leftovers(&h).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn prechecks_skip_tables_with_their_reason() {
    let h = Harness::start().await;
    let (a, db, mut admin) = setup(&h).await;
    bloated(&mut admin, "public.nokey", 20_000, false).await;
    bloated(&mut admin, "public.fat", 20_000, true).await;
    admin
        .execute("CREATE TABLE public.tidy (id int PRIMARY KEY, v text); INSERT INTO tidy SELECT i, 'x' FROM generate_series(1, 5000) i")
        .await
        .unwrap();
    let nokey_sum = checksum_plain(&mut admin, "public.nokey").await;

    // The whole database: the bloated keyed table is repacked, the others skipped with why.
    let (op, logs) = run(&a, &db, &repack(&[], 20.0)).await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{logs:#?}");
    assert!(logs.iter().any(|l| l.starts_with("public.nokey: skipped: no primary key")), "{logs:#?}");
    assert!(
        logs.iter().any(|l| l.starts_with("public.tidy: skipped: bloat ") && l.contains("< threshold 20%")),
        "{logs:#?}"
    );
    assert!(logs.iter().any(|l| l.starts_with("public.fat: repacked")), "{logs:#?}");
    assert_eq!(checksum_plain(&mut admin, "public.nokey").await, nokey_sum);

    // Only unrepackable tables: a clear failed operation, nothing changed.
    let (op, logs) = run(&a, &db, &repack(&["public.nokey"], 20.0)).await;
    assert_eq!(op.status, OperationStatus::Failed, "{logs:#?}");
    let err = op.error.unwrap();
    assert_eq!(err.code, "nothing_repacked");
    assert!(err.message.contains("no primary key"), "{err:?}");
    // A transaction holding a lock for longer than allowed makes the table wait for another run.
    let mut holder = h.target_db("team-a_shop").await;
    holder.execute("BEGIN; SELECT count(*) FROM public.fat; DELETE FROM public.fat WHERE id = 10").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut req = repack(&["public.fat"], 0.0);
    req.options.max_transaction_age = Some("1s".into());
    let (op, logs) = run(&a, &db, &req).await;
    assert_eq!(op.status, OperationStatus::Failed);
    assert!(logs.iter().any(|l| l.contains("holds a lock on it")), "{logs:#?}");
    holder.execute("ROLLBACK").await.unwrap();
}

async fn checksum_plain(c: &mut PgConnection, table: &str) -> String {
    checksum(c, table).await
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_repack_leaves_nothing_behind() {
    let h =
        Harness::start_with(ApiOptions { workers: 2, lease_ms: 1500, step_delay_ms: 0, ..Default::default() }).await;
    let (a, db, mut admin) = setup(&h).await;
    bloated(&mut admin, "public.orders", 50_000, true).await;
    let sum = checksum(&mut admin, "public.orders").await;
    // An open transaction makes pg_repack wait for its lock (it never kills it by default).
    let mut reader = h.target_db("team-a_shop").await;
    reader.execute("BEGIN; SELECT count(*) FROM public.orders").await.unwrap();

    let mut req = repack(&["public.orders"], 20.0);
    req.options.lock_timeout = Some("120s".into());
    let acc = a.start_maintenance(db.id, &req).await.unwrap();
    let id = acc.operation.id;
    wait_until("pg_repack to be waiting for its lock", WAIT, || {
        let a = a.clone();
        async move { a.operation_logs(id).await.unwrap().iter().any(|l| l.message.contains("repacking")) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(repack_leftovers(&h).await.2 >= 1, "pg_repack should be connected while waiting");
    a.cancel_operation(id).await.unwrap();
    let op = a.wait_operation(id, WAIT).await.unwrap();
    assert_eq!(op.status, OperationStatus::Cancelled, "{op:?}");
    assert_eq!(repack_leftovers(&h).await, (0, 0, 0), "pg_repack objects or sessions left behind");
    reader.execute("ROLLBACK").await.unwrap();
    assert_eq!(checksum(&mut admin, "public.orders").await, sum);
    let logs: Vec<String> = a.operation_logs(id).await.unwrap().into_iter().map(|l| l.message).collect();
    assert!(logs.iter().any(|l| l.contains("cancelled on request")), "{logs:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vacuum_analyze_reindex_and_bad_input() {
    let h = Harness::start().await;
    let (a, db, mut admin) = setup(&h).await;
    bloated(&mut admin, "public.orders", 20_000, true).await;

    let (op, logs) =
        run(&a, &db, &CreateMaintenance { kind: MaintenanceKind::Vacuum, tables: vec![], options: Default::default() })
            .await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{logs:#?}");
    assert!(logs.iter().any(|l| l.starts_with("public.orders: dead tuples 18000 -> 0")), "{logs:#?}");
    for kind in [MaintenanceKind::Analyze, MaintenanceKind::Reindex] {
        let (op, logs) = run(
            &a,
            &db,
            &CreateMaintenance { kind, tables: vec!["public.orders".into()], options: Default::default() },
        )
        .await;
        assert_eq!(op.status, OperationStatus::Succeeded, "{kind:?}: {logs:#?}");
    }

    // Bad input: refused up front, or a clear failed operation that changed nothing.
    let post = |body: serde_json::Value| {
        let a = a.clone();
        async move {
            a.send::<_, MaintenanceAccepted>(
                reqwest::Method::POST,
                &format!("/v1/databases/{}/maintenance", db.id),
                Some(&body),
                &[],
                None,
            )
            .await
        }
    };
    let e = post(serde_json::json!({"kind": "defrag"})).await.unwrap_err();
    assert_eq!(e.problem().unwrap().code, "invalid_body");
    let e = post(serde_json::json!({"kind": "repack", "tables": ["orders; drop table x"]})).await.unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "tables[0]");
    let e = post(serde_json::json!({"kind": "repack", "options": {"jobs": 20, "lock_timeout": "forever", "bloat_threshold_percent": 150}}))
        .await
        .unwrap_err();
    let fields: Vec<&str> = e.problem().unwrap().errors.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, vec!["options.bloat_threshold_percent", "options.jobs", "options.lock_timeout"]);
    let (op, _) = run(&a, &db, &repack(&["public.orders", "public.nope"], 0.0)).await;
    assert_eq!(op.status, OperationStatus::Failed);
    let err = op.error.unwrap();
    assert_eq!(err.code, "unknown_table");
    assert!(err.message.contains("public.nope"), "{err:?}");
    let mut su = h.target_db("team-a_shop").await;
    let ext: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pg_repack'")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(ext, 0, "an unknown table must stop the run before anything is installed");
    // Another tenant cannot run maintenance on it.
    let b = h.tenant("team-b").await;
    let e = b.start_maintenance(db.id, &repack(&[], 0.0)).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
}

#[tokio::test(flavor = "multi_thread")]
async fn mismatched_pg_repack_client_is_reported_and_nothing_changes() {
    let dir = tempdir();
    let fake = dir.path().join("pg_repack");
    std::fs::write(&fake, "#!/bin/sh\necho 'pg_repack 0.9.0'\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let opts = ApiOptions { env: vec![("DBAAS_PG_REPACK".into(), fake.display().to_string())], ..Default::default() };
    let h = Harness::start_with(opts).await;
    let (a, db, mut admin) = setup(&h).await;
    bloated(&mut admin, "public.orders", 5_000, true).await;
    let (op, _) = run(&a, &db, &repack(&["public.orders"], 0.0)).await;
    assert_eq!(op.status, OperationStatus::Failed);
    let err = op.error.unwrap();
    assert_eq!(err.code, "pg_repack_version_mismatch");
    assert!(err.message.contains("0.9.0") && err.message.contains("1.4"), "{err:?}");
    let mut su = h.target_db("team-a_shop").await;
    let ext: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pg_repack'")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(ext, 0);
}
