//! Backups of one database: taken with the real pg_dump as the database's own admin role,
//! sealed into a filesystem store (no plaintext at rest, SHA-256 recorded), verified by a real
//! pg_restore into a scratch database compared with the manifest; a tampered object fails
//! verification; other tenants see nothing; bad input is refused with nothing recorded.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::*;
use dbaas_client::*;
use sha2::Digest;

fn problem(e: &ClientError) -> &Problem {
    e.problem().unwrap_or_else(|| panic!("not a problem: {e}"))
}

fn all_envs() -> Vec<Environment> {
    vec![Environment::Sandbox, Environment::Preprod, Environment::Prod]
}

async fn log_of(c: &Client, op: uuid::Uuid) -> String {
    c.operation_logs(op).await.unwrap().iter().map(|l| l.message.clone()).collect::<Vec<_>>().join("\n")
}

fn sealed_objects(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(sealed_objects(&p));
        } else if p.to_string_lossy().ends_with(".dump.sealed") {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_is_sealed_verified_and_a_tampered_one_fails() {
    let h = Harness::in_process().await;
    let store_dir = tempdir();
    let path = store_dir.path().to_str().unwrap().to_string();
    let store = h.admin.create_backup_store(&CreateBackupStore::filesystem("fs", &path, all_envs())).await.unwrap();
    assert_eq!(store.kind, BackupStoreKind::Filesystem);
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("orders")).await;
    let mut c = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, 'marker-row-7f3a' FROM generate_series(1, 500) g; \
         CREATE SCHEMA app; CREATE TABLE app.items (x int); INSERT INTO app.items VALUES (1), (2), (3);",
    )
    .execute(&mut c)
    .await
    .unwrap();

    let acc = a.create_backup(db.id, &CreateBackup::default()).await.unwrap();
    assert_eq!(acc.backup.status, BackupStatus::Running);
    let op = a.wait_operation(acc.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_of(&a, op.id).await);
    let b = a.get_backup(acc.backup.id).await.unwrap();
    assert_eq!((b.status, b.store.as_str()), (BackupStatus::Succeeded, "fs"));
    let manifest = b.manifest.clone().unwrap();
    let counts: Vec<(&str, i64)> = manifest.tables.iter().map(|t| (t.table.as_str(), t.rows)).collect();
    assert_eq!(counts, vec![("app.items", 3), ("public.orders", 500)]);
    // Small tables carry a content checksum: md5 of the rows as text, in text order.
    let mut c2 = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    let want: String = sqlx::query_scalar("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM app.items t")
        .fetch_one(&mut c2)
        .await
        .unwrap();
    assert_eq!(manifest.tables[0].checksum.as_deref(), Some(want.as_str()));
    assert_eq!(manifest.format, "custom");
    assert_eq!(a.list_backups(db.id).await.unwrap(), vec![b.clone()]);

    // At rest: sealed, no plaintext, the recorded checksum.
    let objects = sealed_objects(store_dir.path());
    assert_eq!(objects.len(), 1, "{objects:?}");
    let mut bytes = std::fs::read(&objects[0]).unwrap();
    assert_eq!(Some(bytes.len() as i64), b.size_bytes);
    assert!(!bytes.windows(15).any(|w| w == b"marker-row-7f3a"), "plaintext in the stored backup");
    let sha: String = sha2::Sha256::digest(&bytes).iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(Some(sha), b.sha256);

    // The manual restore path: `dbaas-api backup-open` unseals it for pg_restore.
    let out = std::process::Command::new(BIN)
        .args(["backup-open", &b.id.to_string()])
        .env("DATABASE_URL", &h.state.url)
        .env("DBAAS_MASTER_KEY", &h.key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.starts_with(b"PGDMP"));
    assert_eq!(Some(out.stdout.len() as i64), b.dump_bytes);
    let dump = store_dir.path().join("opened.dump");
    std::fs::write(&dump, &out.stdout).unwrap();
    let bin = dbaas_api::pgcluster::find_bin_dir().unwrap();
    let list = std::process::Command::new(bin.join("pg_restore")).arg("--list").arg(&dump).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("TABLE DATA public orders"));
    std::fs::remove_file(&dump).unwrap();

    // Verified by a real restore; the scratch database is gone afterwards.
    let v = a.verify_backup(b.id).await.unwrap();
    let op = a.wait_operation(v.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_of(&a, op.id).await);
    let b = a.get_backup(b.id).await.unwrap();
    assert_eq!(b.verify_status, Some(VerifyStatus::Passed), "{b:?}");
    assert!(b.verify_message.as_deref().unwrap().contains("2 content checksums match"), "{b:?}");
    assert!(b.restore_ms.is_some() && b.verified_at.is_some());
    assert!(!h.target_has_db("team-a_orders_verify").await);

    // One flipped byte: the verification fails, says why, and the backup shows it.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&objects[0], &bytes).unwrap();
    let v = a.verify_backup(b.id).await.unwrap();
    let op = a.wait_operation(v.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Failed);
    assert_eq!(op.error.as_ref().unwrap().code, "verify_failed", "{op:?}");
    let b = a.get_backup(b.id).await.unwrap();
    assert_eq!(b.verify_status, Some(VerifyStatus::Failed));
    assert!(b.verify_message.unwrap().contains("does not open"));
    assert!(!h.target_has_db("team-a_orders_verify").await);

    // Another tenant sees none of it.
    let other = h.tenant("team-b").await;
    assert_eq!(problem(&other.get_backup(b.id).await.unwrap_err()).status, 404);
    assert_eq!(problem(&other.list_backups(db.id).await.unwrap_err()).status, 404);
    assert_eq!(problem(&other.verify_backup(b.id).await.unwrap_err()).status, 404);
    assert_eq!(problem(&other.create_backup(db.id, &CreateBackup::default()).await.unwrap_err()).status, 404);
    assert_eq!(problem(&other.delete_backup(b.id).await.unwrap_err()).status, 404);

    // Deleted: the stored object and the record are gone.
    a.delete_backup(b.id).await.unwrap();
    assert!(sealed_objects(store_dir.path()).is_empty());
    assert_eq!(problem(&a.get_backup(b.id).await.unwrap_err()).status, 404);
    assert_eq!(problem(&a.delete_backup(b.id).await.unwrap_err()).status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_backup_input_is_refused_with_nothing_recorded() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("orders")).await;

    // No store serves sandbox yet.
    let e = a.create_backup(db.id, &CreateBackup::default()).await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).errors[0].code.as_str()), (422, "no_store"));

    let dir = tempdir();
    let path = dir.path().to_str().unwrap().to_string();
    let req = |name: &str, path: &str, envs: Vec<Environment>| CreateBackupStore::filesystem(name, path, envs);
    for (bad, field) in [
        (req("Bad Name", &path, all_envs()), "name"),
        (req("s1", "relative/dir", all_envs()), "path"),
        (req("s1", "/nonexistent/dbaas-backups", all_envs()), "path"),
        (req("s1", &path, vec![]), "environments"),
    ] {
        let e = h.admin.create_backup_store(&bad).await.unwrap_err();
        assert_eq!((problem(&e).status, problem(&e).errors[0].field.as_str()), (422, field), "{bad:?}");
    }
    // Tenants cannot register stores.
    assert_eq!(problem(&a.create_backup_store(&req("s1", &path, all_envs())).await.unwrap_err()).status, 403);
    assert!(h.admin.list_backup_stores().await.unwrap().is_empty());

    h.admin.create_backup_store(&req("prod-only", &path, vec![Environment::Prod])).await.unwrap();
    let e = h.admin.create_backup_store(&req("prod-only", &path, vec![Environment::Prod])).await.unwrap_err();
    assert_eq!(problem(&e).status, 409);
    let named = |s: &str| CreateBackup { store: Some(s.into()) };
    let e = a.create_backup(db.id, &named("nope")).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].code, "unknown_store");
    let e = a.create_backup(db.id, &named("prod-only")).await.unwrap_err();
    assert_eq!(problem(&e).errors[0].code, "store_not_serving");
    assert!(a.list_backups(db.id).await.unwrap().is_empty());
    assert_eq!(problem(&a.get_backup(uuid::Uuid::new_v4()).await.unwrap_err()).status, 404);
}

/// md5 of every row of a table, in key order: equal digests, equal data.
async fn digest(c: &mut sqlx::PgConnection, table: &str) -> String {
    sqlx::query_scalar(&format!("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"))
        .fetch_one(c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_into_a_new_database_even_after_the_source_is_deleted() {
    let h = Harness::in_process().await;
    let store_dir = tempdir();
    let path = store_dir.path().to_str().unwrap().to_string();
    h.admin.create_backup_store(&CreateBackupStore::filesystem("fs", &path, all_envs())).await.unwrap();
    let a = h.tenant("team-a").await;
    let src = h.ready_database(&a, db_req("orders")).await;
    let mut c = connect_as(&a.get_credential(src.id, Access::Admin).await.unwrap()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 300) g; \
         CREATE SCHEMA app; CREATE TABLE app.items (x int); INSERT INTO app.items VALUES (1), (2);",
    )
    .execute(&mut c)
    .await
    .unwrap();
    // Tenant code the restore evaluates (an expression index): it refuses to run as anyone but
    // a tenant's admin role (or a drill's scratch login, which owns only the scratch copy),
    // and as a superuser, so a restore run with the service's login fails here instead of
    // handing the tenant the service's rights.
    sqlx::raw_sql(
        "CREATE FUNCTION public.guard(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN \
           IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) \
              OR current_user !~ '^team-a_.*_(admin|verify)$' THEN \
             RAISE EXCEPTION 'tenant code ran as %', current_user; \
           END IF; RETURN $1; END $$; \
         CREATE INDEX orders_guard ON orders (public.guard(id));",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let want = (digest(&mut c, "orders").await, digest(&mut c, "app.items").await);
    let acc = a.create_backup(src.id, &CreateBackup::default()).await.unwrap();
    let op = a.wait_operation(acc.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_of(&a, op.id).await);
    let backup = acc.backup.id;
    let v = a.verify_backup(backup).await.unwrap();
    let op = a.wait_operation(v.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_of(&a, op.id).await);

    // Bad input first: nothing is made.
    let e = a.create_database(&CreateDatabase { restore_from: Some(backup), ..db_req("orders") }).await.unwrap_err();
    assert_eq!(problem(&e).status, 409, "the name is taken");
    let other = h.tenant("team-b").await;
    let e =
        other.create_database(&CreateDatabase { restore_from: Some(backup), ..db_req("stolen") }).await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).errors[0].field.as_str()), (422, "restore_from"));
    let e = a
        .create_database(&CreateDatabase { restore_from: Some(uuid::Uuid::new_v4()), ..db_req("nothing") })
        .await
        .unwrap_err();
    assert_eq!(problem(&e).errors[0].code, "unknown_backup");

    // The source goes away; its backup stays and restores into a new database.
    let del = a.delete_database(src.id, false).await.unwrap();
    let op = a.wait_operation(del.operation.unwrap().id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(a.get_backup(backup).await.unwrap().status, BackupStatus::Succeeded);

    let copy = h.ready_database(&a, CreateDatabase { restore_from: Some(backup), ..db_req("orders-copy") }).await;
    let mut admin = connect_as(&a.get_credential(copy.id, Access::Admin).await.unwrap()).await.unwrap();
    assert_eq!((digest(&mut admin, "orders").await, digest(&mut admin, "app.items").await), want);
    // The access model holds on what the restore created.
    let mut w = connect_as(&a.get_credential(copy.id, Access::Write).await.unwrap()).await.unwrap();
    sqlx::query("INSERT INTO app.items VALUES (3)").execute(&mut w).await.unwrap();
    let mut r = connect_as(&a.get_credential(copy.id, Access::Read).await.unwrap()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.items").fetch_one(&mut r).await.unwrap();
    assert_eq!(n, 3);
    let denied = sqlx::query("DELETE FROM orders").execute(&mut r).await.unwrap_err();
    assert_eq!(sqlstate(&denied), "42501");
    let owner: String = sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'orders'")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(owner, "team-a_orders-copy_admin");

    // The last good backup of a protected database stays until another one exists.
    let keep = h.ready_database(&a, CreateDatabase { mode: Some(DatabaseMode::Protected), ..db_req("keep") }).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let acc = a.create_backup(keep.id, &CreateBackup::default()).await.unwrap();
        let op = a.wait_operation(acc.operation.id, Duration::from_secs(120)).await.unwrap();
        assert_eq!(op.status, OperationStatus::Succeeded);
        ids.push(acc.backup.id);
    }
    a.delete_backup(ids[0]).await.unwrap();
    let e = a.delete_backup(ids[1]).await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).code.as_str()), (409, "last_good_backup"));
    assert_eq!(a.list_backups(keep.id).await.unwrap().len(), 1);
}
