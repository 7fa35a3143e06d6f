//! Passwords never reach a server log: on a managed instance logging every statement
//! (`log_statement = all`), the service provisions a database, rotates a password, issues and
//! revokes a lease, takes a backup (its backup login gets a password of its own) and restores
//! it; the server's log holds the role changes, each with a SCRAM-SHA-256 verifier the service
//! computed, and none of the passwords — the tenants' nor the service's own.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::hosts::*;
use common::*;
use dbaas_api::crypto::MasterKey;
use dbaas_client::*;

async fn succeeded(c: &Client, op: uuid::Uuid) {
    let op = c.wait_operation(op, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_of(c, op.id).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_password_reaches_the_server_log() {
    let h = Harness::start().await;
    let _store = with_store(&h).await;
    let (dir, _host) = local_host(&h, "log-box", [25930, 25949]).await;
    let a = h.tenant("team-a").await;
    let req = CreateInstance { settings: settings(&[("log_statement", "all")]), ..managed("pg-logged", "log-box") };
    h.admin.create_instance(&req).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-logged").await;
    assert_eq!(op.status, OperationStatus::Succeeded);

    let db = h
        .ready_database(
            &a,
            CreateDatabase { name: "orders".into(), instance: Some("pg-logged".into()), ..Default::default() },
        )
        .await;
    let mut secrets = Vec::new();
    for access in [Access::Admin, Access::Write, Access::Read] {
        secrets.push(a.get_credential(db.id, access).await.unwrap().password);
    }
    let rot = a.rotate_credential(db.id, Access::Write).await.unwrap();
    succeeded(&a, rot.operation.id).await;
    secrets.push(a.get_credential(db.id, Access::Write).await.unwrap().password);
    let lease = a.create_lease(db.id, &CreateLease { access: Access::Read, ttl: "15m".into() }).await.unwrap();
    succeeded(&a, lease.operation.clone().unwrap().id).await;
    secrets.push(lease.credential.password.clone());
    let revoked = a.revoke_lease(db.id, lease.credential.id).await.unwrap();
    succeeded(&a, revoked.operation.unwrap().id).await;
    let backup = a.create_backup(db.id, &CreateBackup::default()).await.unwrap();
    succeeded(&a, backup.operation.id).await;
    let restore = RestoreRequest {
        backup: Some(backup.backup.id),
        time: None,
        target: RestoreTarget::New,
        name: Some("orders-copy".into()),
        retain_hours: None,
        grace: None,
    };
    succeeded(&a, a.restore_database(db.id, &restore).await.unwrap().operation.unwrap().id).await;
    // The service's own login to the instance.
    let mut state = h.state_db().await;
    let enc: Vec<u8> = sqlx::query_scalar("SELECT admin_password_enc FROM instances WHERE id = $1")
        .bind(inst.id)
        .fetch_one(&mut state)
        .await
        .unwrap();
    let key = MasterKey::from_base64(&h.key).unwrap();
    secrets.push(key.decrypt(&enc, &format!("instance:{}", inst.id)).unwrap());

    let inst_dir = dir.instance_dirs().into_iter().find(|d| d.starts_with("pg-logged-")).unwrap();
    let log = std::fs::read_to_string(format!("{}/{inst_dir}/server.log", dir.root())).unwrap();
    // The log does hold the statements that set the passwords (so the check below can fail).
    let role_changes = log.lines().filter(|l| l.contains("PASSWORD 'SCRAM-SHA-256$")).count();
    assert!(role_changes >= 5, "only {role_changes} role changes logged:\n{log}");
    for (i, secret) in secrets.iter().enumerate() {
        assert!(secret.len() >= 16, "secret {i} is too short to search for");
        assert!(!log.contains(secret.as_str()), "secret {i} is in the server log");
    }
}
