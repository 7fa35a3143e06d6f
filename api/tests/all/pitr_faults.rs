//! Faults around point-in-time recovery, with the real pgBackRest and the API as a real
//! process: SIGKILL during a base backup and during a database's restore to a time (each is
//! resumed by the next process and ends once, nothing of the scratch cluster is left), and a
//! repository that refuses WAL for a while (the failures show in the recovery window and
//! nothing is lost once it takes WAL again).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::hosts::*;
use common::*;
use dbaas_client::*;

async fn stamp(c: &Client, db: uuid::Uuid, sql: &str) -> DateTime<Utc> {
    let mut conn = connect_as(&c.get_credential(db, Access::Admin).await.unwrap()).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&mut conn).await.unwrap()
}

async fn ids(cred: &Credential) -> Vec<i32> {
    let mut conn = connect_as(cred).await.unwrap();
    sqlx::query_scalar("SELECT i FROM t ORDER BY i").fetch_all(&mut conn).await.unwrap()
}

async fn window(admin: &(Client, &str), until: impl Fn(&RecoveryWindow) -> bool, what: &str) -> RecoveryWindow {
    let start = Instant::now();
    loop {
        let w = admin.0.instance_recovery(admin.1).await.unwrap();
        if until(&w) {
            return w;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "never {what}: {w:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn logged(h: &Harness, op: uuid::Uuid, text: &str) {
    wait_until(text, Duration::from_secs(120), || async {
        h.count(&format!(
            "SELECT count(*) FROM operation_logs WHERE operation_id = '{op}' AND message LIKE '{}%'",
            text.replace('\'', "''")
        ))
        .await
            >= 1
    })
    .await;
}

/// A harness with a host, an archiving instance `pg-f` (archive_timeout 2 s) whose first base
/// backup is done, a backup store and a database `orders` holding table `t`.
async fn setup(opts: ApiOptions, ports: [u16; 2]) -> (Harness, HostDir, tempfile::TempDir, Client, Database) {
    let h = Harness::start_with(opts).await;
    let store = with_store(&h).await;
    let (dir, _host) = local_host(&h, "fault-box", ports).await;
    let a = h.tenant("team-a").await;
    let req = CreateInstance { settings: settings(&[("archive_timeout", "2s")]), ..managed("pg-f", "fault-box") };
    h.admin.create_instance(&req).await.unwrap();
    let (op, _) = settle(&h.admin, "pg-f").await;
    assert_eq!(op.status, OperationStatus::Succeeded);
    let db = h
        .ready_database(
            &a,
            CreateDatabase { name: "orders".into(), instance: Some("pg-f".into()), ..Default::default() },
        )
        .await;
    window(&(h.admin.clone(), "pg-f"), |w| w.earliest.is_some(), "a base backup").await;
    stamp(&a, db.id, "CREATE TABLE t (i int); INSERT INTO t VALUES (1)").await;
    (h, dir, store, a, db)
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_a_base_backup_and_a_restore_to_a_time_each_ends_once() {
    let opts = ApiOptions { lease_ms: 2000, step_delay_ms: 300, ..Default::default() };
    let (mut h, dir, _store, a, db) = setup(opts.clone(), [25870, 25889]).await;

    // A full base backup, the API killed while pgBackRest copies.
    let before = h.admin.instance_recovery("pg-f").await.unwrap().base_backups.len();
    let op = h.admin.create_base_backup("pg-f", BaseBackupKind::Full).await.unwrap();
    logged(&h, op.id, "pgBackRest full backup").await;
    h.apis[0].kill();
    let i = h.spawn_api(opts.clone()).await;
    let admin = Client::new(&h.apis[i].endpoint, &h.admin_token).unwrap();
    let a = Client::new(&h.apis[i].endpoint, a.token()).unwrap();
    let done = admin.wait_operation(op.id, Duration::from_secs(240)).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{}", log_text(&admin, op.id).await);
    assert!(done.attempts >= 2, "{done:?}");
    let w = admin.instance_recovery("pg-f").await.unwrap();
    assert!(w.base_backups.len() > before, "{w:?}");

    // A restore to a time, the API killed while the scratch cluster recovers or is dumped.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = stamp(&a, db.id, "SELECT 1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stamp(&a, db.id, "INSERT INTO t VALUES (2)").await;
    window(&(admin.clone(), "pg-f"), |w| w.latest.is_some_and(|l| l >= t), "the window reaching t").await;
    let req = RestoreRequest {
        backup: None,
        time: Some(t),
        target: RestoreTarget::InPlace,
        name: None,
        retain_hours: None,
        grace: Some("1s".into()),
    };
    let cred = a.get_credential(db.id, Access::Admin).await.unwrap();
    let op = a.restore_database(db.id, &req).await.unwrap().operation.unwrap().id;
    logged(&h, op, "recovering").await;
    let n = h.apis.len() - 1;
    h.apis[n].kill();
    // The live database is untouched meanwhile.
    assert_eq!(ids(&cred).await, vec![1, 2]);
    let j = h.spawn_api(opts).await;
    let a = Client::new(&h.apis[j].endpoint, a.token()).unwrap();
    // While the resumed attempt dumps from its scratch cluster (a copy of the whole instance,
    // with every role as it was), the tenant's own login is refused there: only the service
    // and the backup login may log in.
    logged(&h, op, "dumping").await;
    let mut state = h.state_db().await;
    let line: String = sqlx::query_scalar(
        "SELECT message FROM operation_logs WHERE operation_id = $1 AND message LIKE 'scratch cluster %' ORDER BY id DESC LIMIT 1",
    )
    .bind(op)
    .fetch_one(&mut state)
    .await
    .unwrap();
    let port: u16 = line.split(" on port ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap();
    let opts: sqlx::postgres::PgConnectOptions = cred.uri.parse().unwrap();
    let e = sqlx::Connection::connect_with(&opts.port(port).ssl_mode(sqlx::postgres::PgSslMode::Require)).await;
    let e: sqlx::Error = e.map(|_: sqlx::PgConnection| ()).unwrap_err();
    assert!(e.to_string().contains("no pg_hba.conf entry"), "the tenant's login reached the scratch cluster: {e}");
    let done = a.wait_operation(op, Duration::from_secs(240)).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{}", log_of(&a, op).await);
    assert!(done.attempts >= 2, "{done:?}");
    assert_eq!(ids(&cred).await, vec![1]);
    let scratch: Vec<String> = std::fs::read_dir(dir.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pitr-"))
        .collect();
    assert!(scratch.is_empty(), "{scratch:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_failures_surface_and_nothing_is_lost_once_the_repository_takes_wal_again() {
    let (h, dir, _store, a, db) = setup(ApiOptions::default(), [25890, 25909]).await;
    let inst_dir = dir.instance_dirs().into_iter().find(|d| d.starts_with("pg-f-")).unwrap();
    let archive = format!("{}/{inst_dir}/backrest/repo/archive", dir.root());
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode();

    // The repository refuses WAL: commits go on, archiving fails, the window stops moving.
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut last = Utc::now();
    for i in 10..15 {
        // archive_timeout (2 s) puts each in a WAL file of its own.
        last = stamp(&a, db.id, &format!("INSERT INTO t VALUES ({i})")).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let w = window(
        &(h.admin.clone(), "pg-f"),
        |w| w.archive.as_ref().is_some_and(|x| x.failed_count > 0),
        "archive failures shown",
    )
    .await;
    assert!(w.latest.is_none_or(|l| l < last), "{w:?}");
    assert!(w.archive.unwrap().last_failed_wal.is_some());

    // Back: everything committed meanwhile becomes restorable, and restores.
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(mode)).unwrap();
    window(&(h.admin.clone(), "pg-f"), |w| w.latest.is_some_and(|l| l >= last), "the window catching up").await;
    let req = RestoreRequest {
        backup: None,
        time: Some(last),
        target: RestoreTarget::New,
        name: Some("orders-back".into()),
        retain_hours: None,
        grace: None,
    };
    let acc = a.restore_database(db.id, &req).await.unwrap();
    let op = a.wait_operation(acc.operation.unwrap().id, Duration::from_secs(240)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_of(&a, op.id).await);
    let cred = a.get_credential(acc.database.id, Access::Admin).await.unwrap();
    assert_eq!(ids(&cred).await, vec![1, 10, 11, 12, 13, 14]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_made_before_archiving_gets_it_from_the_migrations_operation_even_when_killed() {
    let opts = ApiOptions { lease_ms: 2000, step_delay_ms: 300, ..Default::default() };
    let mut h = Harness::start_with(opts.clone()).await;
    let (dir, _host) = local_host(&h, "old-box", [25910, 25929]).await;
    h.admin.create_instance(&managed("pg-old", "old-box")).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-old").await;
    assert_eq!(op.status, OperationStatus::Succeeded);
    window(&(h.admin.clone(), "pg-old"), |w| w.earliest.is_some(), "a base backup").await;

    // Made into an instance from before archiving: no repository, no archiving settings.
    let mut state = h.state_db().await;
    sqlx::query("UPDATE instances SET archiving = 'off', repo_key_enc = NULL WHERE name = 'pg-old'")
        .execute(&mut state)
        .await
        .unwrap();
    let inst_dir =
        format!("{}/{}", dir.root(), dir.instance_dirs().into_iter().find(|d| d.starts_with("pg-old-")).unwrap());
    // The archiver may be writing a file into it meanwhile: removal races it, so again.
    let mut tries = 0;
    while let Err(e) = std::fs::remove_dir_all(format!("{inst_dir}/backrest")) {
        tries += 1;
        assert!(tries < 50 && e.kind() == std::io::ErrorKind::DirectoryNotEmpty, "{e}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::remove_file(format!("{inst_dir}/pgbackrest.conf")).unwrap();
    let up = h
        .admin
        .update_instance(
            "pg-old",
            &UpdateInstance { settings: Some(settings(&[("work_mem", "8MB")])), ..Default::default() },
        )
        .await
        .unwrap();
    let op = h.admin.wait_operation(up.last_operation_id.unwrap(), Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);
    let conf = std::fs::read_to_string(format!("{inst_dir}/pgdata/dbaas.conf")).unwrap();
    assert!(!conf.contains("archive_command"), "{conf}");
    assert_eq!(h.admin.instance_recovery("pg-old").await.unwrap().archiving, ArchivingState::Off);

    // The migration's own statement queues the operation; the API is killed while it restarts
    // the server, and the next process finishes it.
    let migration =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/20261203000017_pitr.sql")).unwrap();
    let insert = &migration[migration.find("INSERT INTO operations").unwrap()..];
    sqlx::raw_sql(insert).execute(&mut state).await.unwrap();
    let op: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM operations WHERE kind = 'enable_archiving' AND target_id = $1")
            .bind(inst.id)
            .fetch_one(&mut state)
            .await
            .unwrap();
    logged(&h, op, "restarting the server").await;
    h.apis[0].kill();
    let i = h.spawn_api(opts).await;
    let admin = Client::new(&h.apis[i].endpoint, &h.admin_token).unwrap();
    let done = admin.wait_operation(op, Duration::from_secs(240)).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{}", log_text(&admin, op).await);
    let w = admin.instance_recovery("pg-old").await.unwrap();
    assert_eq!(w.archiving, ArchivingState::On);
    assert!(w.earliest.is_some() && w.base_backups.iter().any(|b| b.kind == BaseBackupKind::Full), "{w:?}");
    let conf = std::fs::read_to_string(format!("{inst_dir}/pgdata/dbaas.conf")).unwrap();
    assert!(conf.contains("archive_mode = 'on'") && conf.contains("archive-push %p"), "{conf}");
}
