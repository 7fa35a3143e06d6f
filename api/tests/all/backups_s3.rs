//! Backups in S3, through a real S3-protocol server (moto, started per test): registration
//! probes the bucket and its Object Lock; a backup is uploaded sealed (no plaintext of a
//! marker row in the bucket), listed, verified and restored into a new database; under
//! Object Lock the backup is written with a retention date, DELETE is refused before it (and
//! S3 itself refuses to delete the version); expired backups are purged from the bucket by
//! the lifecycle loop, except locked ones; a flipped byte in the bucket makes verification
//! fail and a restore refuse; bad stores are refused with nothing recorded.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use base64::Engine;
use common::*;
use dbaas_client::*;
use dbaas_testkit::s3::S3Server;

fn problem(e: &ClientError) -> &Problem {
    e.problem().unwrap_or_else(|| panic!("not a problem: {e}"))
}

async fn log_of(c: &Client, op: uuid::Uuid) -> String {
    c.operation_logs(op).await.unwrap().iter().map(|l| l.message.clone()).collect::<Vec<_>>().join("\n")
}

/// One call through boto3 (another S3 client than the service's), which must succeed.
fn s3(srv: &S3Server, request: serde_json::Value) -> serde_json::Value {
    srv.admin(request.clone()).unwrap_or_else(|e| panic!("{request}: {e}"))
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()
}

fn store_req(name: &str, endpoint: &str, bucket: &str, lock: Option<ObjectLock>) -> CreateBackupStore {
    CreateBackupStore {
        name: name.into(),
        kind: BackupStoreKind::S3,
        path: None,
        s3: Some(CreateS3Location {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            region: "us-east-1".into(),
            prefix: "dbaas/".into(),
            access_key_id: "test-key".into(),
            secret_access_key: "test-secret".into(),
        }),
        object_lock: lock,
        environments: vec![Environment::Sandbox],
    }
}

fn objects(srv: &S3Server, bucket: &str) -> Vec<String> {
    serde_json::from_value(s3(srv, serde_json::json!({"op": "keys", "bucket": bucket}))).unwrap()
}

async fn backup_of(h: &Harness, c: &Client, db: uuid::Uuid, store: &str) -> Backup {
    let acc = c.create_backup(db, &CreateBackup { store: Some(store.into()) }).await.unwrap();
    let op = c.wait_operation(acc.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_of(c, op.id).await);
    let _ = h;
    c.get_backup(acc.backup.id).await.unwrap()
}

async fn table_md5(cred: &Credential, sql: &str) -> String {
    let mut c = connect_as(cred).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_backups_upload_restore_lock_and_purge() {
    let s3srv = S3Server::start();
    s3(&s3srv, serde_json::json!({"op": "create_bucket", "bucket": "plain-backups"}));
    s3(&s3srv, serde_json::json!({"op": "create_bucket", "bucket": "locked-backups", "lock": true}));
    let h = Harness::in_process().await;

    // Bad stores: nothing recorded.
    let lock = ObjectLock { mode: ObjectLockMode::Governance, days: 1 };
    let e = h.admin.create_backup_store(&store_req("s3", &s3srv.endpoint, "plain-backups", Some(lock))).await;
    assert_eq!(problem(&e.unwrap_err()).errors[0].code, "object_lock_unavailable");
    let e = h.admin.create_backup_store(&store_req("s3", &s3srv.endpoint, "no-such-bucket", None)).await;
    assert_eq!(problem(&e.unwrap_err()).status, 422);
    let e = h.admin.create_backup_store(&store_req("s3", &s3srv.endpoint, "Bad_Bucket", None)).await;
    assert_eq!(problem(&e.unwrap_err()).errors[0].field, "s3.bucket");
    let closed = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    let e = h.admin.create_backup_store(&store_req("s3", &closed, "plain-backups", None)).await.unwrap_err();
    assert_eq!(problem(&e).status, 503, "{e}");
    let mut no_bucket = store_req("s3", &s3srv.endpoint, "plain-backups", None);
    no_bucket.s3 = None;
    assert_eq!(problem(&h.admin.create_backup_store(&no_bucket).await.unwrap_err()).errors[0].field, "s3");
    assert!(h.admin.list_backup_stores().await.unwrap().is_empty());

    let plain = h.admin.create_backup_store(&store_req("s3", &s3srv.endpoint, "plain-backups", None)).await.unwrap();
    assert_eq!((plain.kind, plain.bucket_object_lock, plain.object_lock), (BackupStoreKind::S3, Some(false), None));
    let locked = h
        .admin
        .create_backup_store(&store_req("s3-worm", &s3srv.endpoint, "locked-backups", Some(lock)))
        .await
        .unwrap();
    assert_eq!((locked.bucket_object_lock, locked.object_lock), (Some(true), Some(lock)));
    // The secret is never returned.
    let listed = serde_json::to_string(&h.admin.list_backup_stores().await.unwrap()).unwrap();
    assert!(!listed.contains("test-secret"));
    // The probe objects are gone (the locked bucket keeps the probe's version behind a marker).
    assert!(objects(&s3srv, "plain-backups").is_empty());

    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("orders")).await;
    let admin = a.get_credential(db.id, Access::Admin).await.unwrap();
    let mut c = connect_as(&admin).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, 'marker-row-5e1b ' || g FROM generate_series(1, 3000) g;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let md5 = "SELECT md5(string_agg(id::text || note, ',' ORDER BY id)) FROM orders";
    let before = table_md5(&admin, md5).await;

    // Upload: one sealed object under the prefix, no plaintext, the recorded checksum.
    let b = backup_of(&h, &a, db.id, "s3").await;
    assert_eq!((b.store.as_str(), b.reason, b.locked), ("s3", BackupReason::Manual, false));
    let keys = objects(&s3srv, "plain-backups");
    assert_eq!(keys, vec![format!("dbaas/{}/{}/{}.dump.sealed", db_tenant_id(&h, db.id).await, db.id, b.id)]);
    let bytes = b64(&s3(&s3srv, serde_json::json!({"op": "get", "bucket": "plain-backups", "key": keys[0]})));
    assert!(!bytes.windows(15).any(|w| w == b"marker-row-5e1b"), "plaintext in the bucket");
    assert_eq!(Some(bytes.len() as i64), b.size_bytes);

    // Verified and restored from S3.
    let v = a.verify_backup(b.id).await.unwrap();
    let op = a.wait_operation(v.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_of(&a, op.id).await);
    let req = RestoreRequest {
        backup: Some(b.id),
        time: None,
        target: RestoreTarget::New,
        name: Some("orders-copy".into()),
        retain_hours: None,
        grace: None,
    };
    let acc = a.restore_database(db.id, &req).await.unwrap();
    let op = a.wait_operation(acc.operation.unwrap().id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_of(&a, op.id).await);
    let copy_admin = a.get_credential(acc.database.id, Access::Admin).await.unwrap();
    assert_eq!(table_md5(&copy_admin, md5).await, before);

    // Object Lock: written with a retention date; DELETE refused before it, and S3 itself
    // refuses to delete the version.
    let w = backup_of(&h, &a, db.id, "s3-worm").await;
    assert!(w.locked, "{w:?}");
    let until = w.locked_until.unwrap();
    assert!(until > chrono::Utc::now() + chrono::Duration::hours(23), "{until}");
    let e = a.delete_backup(w.id).await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).code.as_str()), (409, "locked"), "{e}");
    let versions: Vec<(String, String)> = serde_json::from_value(s3(
        &s3srv,
        serde_json::json!({"op": "versions", "bucket": "locked-backups", "prefix": "dbaas/"}),
    ))
    .unwrap();
    let (key, version) =
        versions.into_iter().find(|(k, _)| k.ends_with(&format!("{}.dump.sealed", w.id))).expect("the locked version");
    let head: (Option<String>, Option<i64>) = serde_json::from_value(s3(
        &s3srv,
        serde_json::json!({"op": "head", "bucket": "locked-backups", "key": key, "version": version}),
    ))
    .unwrap();
    assert_eq!(head.0.as_deref(), Some("GOVERNANCE"));
    let held = head.1.unwrap();
    assert!((held - until.timestamp()).abs() <= 1, "{held} vs {until}");
    let refused =
        s3srv.admin(serde_json::json!({"op": "delete", "bucket": "locked-backups", "key": key, "version": version}));
    assert!(refused.is_err(), "S3 deleted a locked version");

    // Purge: expired backups leave the bucket and the list; a locked one stays until its
    // date; the newest good backup of a live database stays.
    let newer = backup_of(&h, &a, db.id, "s3").await;
    let mut st = h.state_db().await;
    sqlx::query("UPDATE backups SET expires_at = now() - interval '1 day' WHERE id = ANY($1)")
        .bind(vec![b.id, w.id])
        .execute(&mut st)
        .await
        .unwrap();
    wait_until("the expired backup is purged", Duration::from_secs(30), || async { a.get_backup(b.id).await.is_err() })
        .await;
    assert_eq!(problem(&a.get_backup(b.id).await.unwrap_err()).status, 404);
    assert_eq!(objects(&s3srv, "plain-backups").len(), 1, "only the newer backup's object stays");
    assert!(a.get_backup(w.id).await.unwrap().locked, "a locked backup is never purged before its date");
    assert_eq!(a.get_backup(newer.id).await.unwrap().status, BackupStatus::Succeeded);
    // The newest good backup of a live database is kept even once expired.
    sqlx::query("UPDATE backups SET expires_at = now() - interval '1 day' WHERE id = $1")
        .bind(newer.id)
        .execute(&mut st)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a.get_backup(newer.id).await.unwrap().status, BackupStatus::Succeeded);

    // A flipped byte in the bucket: verification fails and a restore refuses.
    let key = objects(&s3srv, "plain-backups").remove(0);
    let mut bytes = b64(&s3(&s3srv, serde_json::json!({"op": "get", "bucket": "plain-backups", "key": key})));
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
    s3(&s3srv, serde_json::json!({"op": "put", "bucket": "plain-backups", "key": key, "data": data}));
    let v = a.verify_backup(newer.id).await.unwrap();
    let op = a.wait_operation(v.operation.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Failed);
    assert_eq!(op.error.unwrap().code, "verify_failed");
    assert!(a.get_database(db.id).await.unwrap().backups.verification_failed);
    let req = RestoreRequest { backup: Some(newer.id), name: Some("orders-bad".into()), ..req };
    let acc = a.restore_database(db.id, &req).await.unwrap();
    let op = a.wait_operation(acc.operation.unwrap().id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Failed, "a tampered backup restored");
    let bad_admin = a.get_credential(acc.database.id, Access::Admin).await.unwrap();
    let mut bc = connect_as(&bad_admin).await.unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .fetch_one(&mut bc)
        .await
        .unwrap();
    assert_eq!(tables, 0, "nothing of a tampered backup is committed");

    // Store unreachable: a backup fails as retryable (clear code), never listed as good.
    drop(s3srv);
    let acc = a.create_backup(db.id, &CreateBackup { store: Some("s3".into()) }).await.unwrap();
    wait_until("the backup attempt reports the store", Duration::from_secs(60), || async {
        log_of(&a, acc.operation.id).await.contains("store")
    })
    .await;
    let op = a.get_operation(acc.operation.id).await.unwrap();
    assert_ne!(op.status, OperationStatus::Succeeded);
    assert_eq!(a.get_backup(acc.backup.id).await.unwrap().status, BackupStatus::Running);
}

async fn db_tenant_id(h: &Harness, db: uuid::Uuid) -> uuid::Uuid {
    let mut st = h.state_db().await;
    sqlx::query_scalar("SELECT tenant_id FROM databases WHERE id = $1").bind(db).fetch_one(&mut st).await.unwrap()
}

/// The store itself: an object larger than a part goes up in parts and reads back whole; an
/// upload dropped without a commit leaves nothing, in either path.
#[tokio::test(flavor = "multi_thread")]
async fn multipart_uploads_appear_only_when_committed() {
    use dbaas_api::backup::s3::{S3Location, S3Store, PART_SIZE};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s3srv = S3Server::start();
    s3(&s3srv, serde_json::json!({"op": "create_bucket", "bucket": "parts"}));
    let loc = S3Location {
        endpoint: s3srv.endpoint.clone(),
        bucket: "parts".into(),
        region: "us-east-1".into(),
        prefix: "p/".into(),
        access_key_id: "test-key".into(),
    };
    let store = S3Store::new(loc, "test-secret").unwrap();
    // 2.5 parts of varied bytes.
    let data: Vec<u8> = (0..PART_SIZE * 5 / 2).map(|i| (i * 7 + i / 4093) as u8).collect();

    // Abandoned after more than a part was sent: the multipart upload is aborted.
    let mut up = store.upload("big", None);
    up.writer().write_all(&data[..PART_SIZE + 1000]).await.unwrap();
    drop(up);
    // And a small one abandoned before its single request.
    let mut up = store.upload("small", None);
    up.writer().write_all(b"half").await.unwrap();
    drop(up);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.list("").await.unwrap().is_empty());
    let uploads = s3(&s3srv, serde_json::json!({"op": "uploads", "bucket": "parts"}));
    assert_eq!(uploads, 0, "an abandoned upload was left open");

    let mut up = store.upload("big", None);
    up.writer().write_all(&data).await.unwrap();
    up.commit().await.unwrap();
    assert_eq!(store.list("").await.unwrap(), vec!["big".to_string()]);
    let mut back = Vec::new();
    store.open("big", None).await.unwrap().read_to_end(&mut back).await.unwrap();
    assert!(back == data, "read back {} bytes, wrote {}", back.len(), data.len());
    store.delete("big", None).await.unwrap();
    store.delete("big", None).await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());
}
