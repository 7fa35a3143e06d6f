//! SIGKILL of the API (a real process) in the middle of a backup and of an in-place restore:
//! the operation is resumed by the next process and ends once; a backup is never listed as
//! good while its object is partial, and a restore never leaves a half-restored database in
//! place (pg_restore runs in one transaction into a side database; the swap resumes).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::*;
use dbaas_client::*;

async fn log_of(c: &Client, op: uuid::Uuid) -> String {
    c.operation_logs(op).await.unwrap().iter().map(|l| l.message.clone()).collect::<Vec<_>>().join("\n")
}

fn files(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u64)>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if let Ok(m) = e.metadata() {
            out.push((p, m.len()));
        }
    }
}

fn partial_bytes(dir: &std::path::Path) -> u64 {
    let mut all = Vec::new();
    files(dir, &mut all);
    all.iter().filter(|(p, _)| p.to_string_lossy().ends_with(".partial")).map(|(_, n)| n).sum()
}

async fn digest(c: &mut sqlx::PgConnection) -> String {
    sqlx::query_scalar("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM big t").fetch_one(c).await.unwrap()
}

/// A database with a table large enough that dumping and restoring it take a while.
async fn loaded(h: &Harness, a: &Client, name: &str) -> (Database, String) {
    let db = h.ready_database(a, db_req(name)).await;
    let mut c = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE big (id int PRIMARY KEY, a text, b text); \
         INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text), md5((g * 13)::text) || md5(random()::text) \
         FROM generate_series(1, 400000) g;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let d = digest(&mut c).await;
    (db, d)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_killed_mid_stream_is_resumed_and_never_listed_good_while_partial() {
    let mut h = Harness::start_with(ApiOptions { lease_ms: 2000, ..Default::default() }).await;
    let store = tempdir();
    let path = store.path().to_str().unwrap().to_string();
    h.admin.create_backup_store(&CreateBackupStore::filesystem("fs", &path, vec![Environment::Sandbox])).await.unwrap();
    let a = h.tenant("team-a").await;
    let (db, want) = loaded(&h, &a, "orders").await;

    let acc = a.create_backup(db.id, &CreateBackup::default()).await.unwrap();
    wait_until("the dump is streaming into the store", Duration::from_secs(60), || async {
        partial_bytes(store.path()) > 0
    })
    .await;
    h.apis[0].kill();
    // Killed mid-stream: a partial file only, the backup not good.
    assert!(partial_bytes(store.path()) > 0);
    let b = h.admin.get_backup(acc.backup.id).await;
    assert!(b.is_err(), "the API is down");
    let status: String = {
        let mut st = h.state_db().await;
        sqlx::query_scalar("SELECT status FROM backups WHERE id = $1")
            .bind(acc.backup.id)
            .fetch_one(&mut st)
            .await
            .unwrap()
    };
    assert_eq!(status, "running");

    let i = h.spawn_api(ApiOptions { lease_ms: 2000, ..Default::default() }).await;
    let a = Client::new(&h.apis[i].endpoint, &h.admin_token).unwrap();
    let op = a.wait_operation(acc.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_of(&a, op.id).await);
    assert!(op.attempts >= 2, "the operation was resumed: {op:?}");
    let b = a.get_backup(acc.backup.id).await.unwrap();
    assert_eq!(b.status, BackupStatus::Succeeded);
    assert_eq!(partial_bytes(store.path()), 0, "the resumed attempt replaced the partial object");
    // What is stored is whole: it restores to the same data.
    let copy = h
        .ready_database(
            &a,
            CreateDatabase { restore_from: Some(b.id), tenant: Some("team-a".into()), ..db_req("copy") },
        )
        .await;
    let mut c = connect_as(&a.get_credential(copy.id, Access::Admin).await.unwrap()).await.unwrap();
    assert_eq!(digest(&mut c).await, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_in_place_restore_killed_twice_ends_restored_never_half_done() {
    let opts = ApiOptions { lease_ms: 2000, step_delay_ms: 700, ..Default::default() };
    let mut h = Harness::start_with(opts.clone()).await;
    let store = tempdir();
    let path = store.path().to_str().unwrap().to_string();
    h.admin.create_backup_store(&CreateBackupStore::filesystem("fs", &path, vec![Environment::Sandbox])).await.unwrap();
    let a = h.tenant("team-a").await;
    let (db, want) = loaded(&h, &a, "orders").await;
    let acc = a.create_backup(db.id, &CreateBackup::default()).await.unwrap();
    let op = a.wait_operation(acc.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    let admin = a.get_credential(db.id, Access::Admin).await.unwrap();
    let mut c = connect_as(&admin).await.unwrap();
    sqlx::raw_sql("DELETE FROM big WHERE id % 2 = 0").execute(&mut c).await.unwrap();
    let changed = digest(&mut c).await;
    drop(c);

    let req = RestoreRequest {
        backup: Some(acc.backup.id),
        time: None,
        target: RestoreTarget::InPlace,
        name: None,
        retain_hours: None,
        grace: Some("1s".into()),
    };
    let op = a.restore_database(db.id, &req).await.unwrap().operation.unwrap().id;
    let side = format!("{}_restore", db.physical_name);
    // First kill: while pg_restore is filling the side database.
    wait_until("pg_restore runs", Duration::from_secs(60), || async {
        let mut t = h.target_db("postgres").await;
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'dbaas-backup')",
        )
        .bind(&side)
        .fetch_one(&mut t)
        .await
        .unwrap()
    })
    .await;
    h.apis[0].kill();
    // The database in place is untouched.
    let mut c = connect_as(&admin).await.unwrap();
    assert_eq!(digest(&mut c).await, changed);
    drop(c);

    // Second kill: at the swap.
    let i = h.spawn_api(opts).await;
    wait_until("the resumed restore reaches the swap", Duration::from_secs(120), || async {
        h.count(&format!(
            "SELECT count(*) FROM operation_logs WHERE operation_id = '{op}' AND message = 'swapping the restored database in'"
        ))
        .await
            >= 1
    })
    .await;
    h.apis[i].kill();
    // Whatever the kill interrupted, the name holds either the old or nothing half-made.
    let mut t = h.target_db("postgres").await;
    let comment: Option<String> =
        sqlx::query_scalar("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1")
            .bind(&db.physical_name)
            .fetch_optional(&mut t)
            .await
            .unwrap()
            .flatten();
    assert!(comment.is_none() || comment == Some(format!("dbaas:database:{}", db.id)), "{comment:?}");
    drop(t);

    let j = h.spawn_api(ApiOptions { lease_ms: 2000, ..Default::default() }).await;
    let a = Client::new(&h.apis[j].endpoint, &h.admin_token).unwrap();
    let done = a.wait_operation(op, Duration::from_secs(120)).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{}", log_of(&a, op).await);
    assert!(done.attempts >= 3, "{done:?}");
    let mut c = connect_as(&admin).await.unwrap();
    assert_eq!(digest(&mut c).await, want, "the restored data is the backup's");
    assert!(!h.target_has_db(&side).await);
    let mut old = h.target_db(&format!("{}_retained", db.physical_name)).await;
    assert_eq!(digest(&mut old).await, changed, "the previous database is kept whole");
    drop(old);
    assert_eq!(a.get_database(db.id).await.unwrap().status, DatabaseStatus::Ready);

    // Undone, killed at each of its steps: it ends with the previous database back under the
    // name and the restored one kept, never with the name missing or a copy lost.
    let slow = || ApiOptions { lease_ms: 2000, step_delay_ms: 700, ..Default::default() };
    h.apis[j].kill();
    let k = h.spawn_api(slow()).await;
    let a = Client::new(&h.apis[k].endpoint, &h.admin_token).unwrap();
    let undo = a.undo_restore(db.id, &UndoRestore { grace: Some("1s".into()) }).await.unwrap();
    let undo = undo.operation.unwrap().id;
    let mut last = k;
    for step in ["moving the restored", "takes the name", "the restored database is kept as"] {
        wait_until(step, Duration::from_secs(120), || async {
            h.count(&format!(
                "SELECT count(*) FROM operation_logs WHERE operation_id = '{undo}' AND message LIKE '%{step}%'"
            ))
            .await
                >= 1
        })
        .await;
        h.apis[last].kill();
        last = h.spawn_api(slow()).await;
    }
    let a = Client::new(&h.apis[last].endpoint, &h.admin_token).unwrap();
    let done = a.wait_operation(undo, Duration::from_secs(120)).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{}", log_of(&a, undo).await);
    let mut c = connect_as(&admin).await.unwrap();
    assert_eq!(digest(&mut c).await, changed, "the database from before the restore is back");
    let mut kept = h.target_db(&format!("{}_retained", db.physical_name)).await;
    assert_eq!(digest(&mut kept).await, want, "the restored one is kept in its stead");
    assert!(!h.target_has_db(&format!("{}_undo", db.physical_name)).await);
    assert_eq!(a.get_database(db.id).await.unwrap().status, DatabaseStatus::Ready);
}
