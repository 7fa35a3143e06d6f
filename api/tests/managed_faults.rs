//! Managed instances under faults: settings that keep the server from starting.
#![allow(clippy::unwrap_used)]

mod common;

use common::hosts::*;
use common::*;
use dbaas_client::*;

/// A restart-only setting the server cannot start with (more shared memory than the machine
/// has) used to leave the new config on disk and the instance down, with every later start
/// failing. The previous settings must come back and the server run with them.
#[tokio::test(flavor = "multi_thread")]
async fn settings_the_server_cannot_start_with_are_rolled_back() {
    let h = Harness::start().await;
    let (_dir, _host) = local_host(&h, "box-f", [25300, 25399]).await;
    let before: Settings = [("shared_buffers".to_string(), "32MB".to_string())].into();
    let req = CreateInstance {
        settings: before.clone(),
        ..CreateInstance::managed("pg-f", "box-f", "15", Environment::Sandbox)
    };
    h.admin.create_instance(&req).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-f").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);
    assert_eq!(inst.status, InstanceStatus::Ready);

    let huge: Settings = [("shared_buffers".to_string(), "4000GB".to_string())].into();
    h.admin.update_instance("pg-f", &UpdateInstance { settings: Some(huge), ..Default::default() }).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-f").await;
    let log = log_text(&h.admin, op.id).await;
    assert_eq!(op.status, OperationStatus::Failed, "{log}");
    let err = op.error.unwrap();
    assert_eq!(err.code, "start_failed", "{err:?}\n{log}");
    assert!(err.message.contains("previous settings were restored"), "{}", err.message);
    assert_eq!(inst.status, InstanceStatus::Ready);
    assert_eq!(inst.managed.as_ref().unwrap().settings, before);

    // It runs, with the previous settings: a database on it works.
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, CreateDatabase { instance: Some("pg-f".into()), ..db_req("after") }).await;
    let mut c = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    let sb: String = sqlx::query_scalar("SHOW shared_buffers").fetch_one(&mut c).await.unwrap();
    assert_eq!(sb, "32MB");
}
