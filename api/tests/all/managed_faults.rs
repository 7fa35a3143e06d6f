//! Managed instances under faults: settings that keep the server from starting.
#![allow(clippy::unwrap_used)]

use crate::common;

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

/// A port held by an outgoing connection (its local port) let the server come up on IPv6
/// and the unix socket only: `pg_ctl` said it ran, and provisioning retried
/// `connection_refused` until it gave up (dev's port range lay inside the ephemeral range,
/// where the suite's own connections take ports). The start now sees the missing socket,
/// waits for the port, and the instance comes up once the connection is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_port_held_by_an_outgoing_connection_delays_the_start_then_it_succeeds() {
    let h = Harness::start().await;
    let (_dir, _host) = local_host(&h, "box-p", [25400, 25499]).await;
    let port = 25410;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], port).into()).unwrap();
    let client = socket.connect(listener.local_addr().unwrap()).await.unwrap();
    let (server_side, _) = listener.accept().await.unwrap();

    let req =
        CreateInstance { port: Some(port), ..CreateInstance::managed("pg-p", "box-p", "15", Environment::Sandbox) };
    let op = h.admin.create_instance(&req).await.unwrap().last_operation_id.unwrap();
    wait_until("the start to notice the held port", std::time::Duration::from_secs(90), || async {
        log_text(&h.admin, op).await.contains("another socket holds it")
    })
    .await;
    assert_eq!(h.admin.get_instance("pg-p").await.unwrap().status, InstanceStatus::Provisioning);

    // Closed with a reset: no TIME_WAIT keeps the port.
    client.set_zero_linger().unwrap();
    drop(client);
    drop(server_side);
    let (op, inst) = settle(&h.admin, "pg-p").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);
    assert_eq!((inst.status, inst.port), (InstanceStatus::Ready, port));
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, CreateDatabase { instance: Some("pg-p".into()), ..db_req("held") }).await;
    let mut c = connect_as(&a.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut c).await.unwrap();
    assert_eq!(one, 1);
}
