//! `dbaas-api dev`: one command to a working service, stopped cleanly, reusable.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::dev::*;
use common::*;
use dbaas_client::*;

/// A database of tenant `demo` on the `local` instance, once its provisioning succeeded.
async fn local_database(admin: &Client, name: &str) -> DatabaseAccepted {
    let req = CreateDatabase {
        name: name.into(),
        tenant: Some("demo".into()),
        instance: Some("local".into()),
        ..Default::default()
    };
    let acc = admin.create_database(&req).await.unwrap();
    let op = admin.wait_operation(acc.operation.clone().unwrap().id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    acc
}

async fn op_log(admin: &Client, op: uuid::Uuid) -> String {
    let lines = admin.operation_logs(op).await.unwrap();
    lines.iter().map(|l| format!("{}: {}", l.level, l.message)).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_mode_starts_serves_stops_and_reuses() {
    let tmp = tempdir();
    let dir = tmp.path().join("dev");
    let port = dbaas_api::pgcluster::free_port().unwrap();
    let mut child = start_dev(&dir, port, &[]);
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_ready(&endpoint).await;

    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    assert_eq!(env_of(&env, "DBAAS_ENDPOINT"), endpoint);
    let token = env_of(&env, "DBAAS_TOKEN");
    let printed = std::fs::read_to_string(dir.with_extension("stdout")).unwrap();
    assert!(printed.contains(&format!("export DBAAS_TOKEN={token}")), "{printed}");

    let admin = Client::new(&endpoint, &token).unwrap();
    let local = admin.get_instance("local").await.unwrap();
    assert_eq!(local.environment, Environment::Sandbox);
    assert!(local.ca_cert.is_some());
    admin.create_tenant(&CreateTenant { name: "demo".into(), max_databases: None }).await.unwrap();
    let acc = local_database(&admin, "app").await;
    for access in Access::ALL {
        let cred = admin.get_credential(acc.database.id, access).await.unwrap();
        let mut c = connect_as(&cred).await.unwrap_or_else(|e| panic!("{access:?}: {e}"));
        let who: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut c).await.unwrap();
        assert_eq!(who, cred.username);
        let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert!(ssl);
    }

    // The machine is a host too: a managed instance in one call.
    assert_eq!(admin.get_host("local").await.unwrap().kind, HostKind::Local);
    let m = admin.create_instance(&CreateInstance::managed("mine", "local", "15", Environment::Sandbox)).await.unwrap();
    let op = admin.wait_operation(m.last_operation_id.unwrap(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", op_log(&admin, op.id).await);
    let m = admin.get_instance("mine").await.unwrap();
    let mine_pid = std::path::Path::new(&m.managed.as_ref().unwrap().data_dir).join("pgdata/postmaster.pid");
    assert!(mine_pid.exists());

    // SIGTERM stops the API and both clusters (and the managed instance).
    let status = sigterm(&mut child);
    assert!(status.success(), "{status:?}");
    assert!(!dir.join("state/pgdata/postmaster.pid").exists(), "state cluster still running");
    assert!(!dir.join("local/pgdata/postmaster.pid").exists(), "local cluster still running");
    assert!(!mine_pid.exists(), "managed instance still running");

    // A second start with the same data dir reuses it: same token, same database.
    let mut child = start_dev(&dir, port, &[]);
    wait_ready(&endpoint).await;
    let env2 = std::fs::read_to_string(dir.join("env")).unwrap();
    assert_eq!(env_of(&env2, "DBAAS_TOKEN"), token);
    let d = admin.get_database(acc.database.id).await.unwrap();
    assert_eq!(d.status, DatabaseStatus::Ready);
    // The managed instance is started again.
    let m2 = admin.get_instance("mine").await.unwrap();
    assert_ne!(m2.last_operation_id, m.last_operation_id);
    let op = admin.wait_operation(m2.last_operation_id.unwrap(), Duration::from_secs(60)).await.unwrap();
    assert_eq!((op.kind, op.status), (OperationKind::StartInstance, OperationStatus::Succeeded), "{op:?}");
    assert!(mine_pid.exists());
    assert!(admin.get_database_fresh(d.id).await.unwrap().drift.unwrap().is_clean());
    assert!(sigterm(&mut child).success());
}

/// After `kill -9` of dev its clusters keep running; the next start used to fail (another
/// server might be running) and stop the state cluster. It takes them back now. The data
/// dir is private from the start.
#[tokio::test(flavor = "multi_thread")]
async fn dev_mode_recovers_from_kill_9_and_keeps_its_dir_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempdir();
    let dir = tmp.path().join("dev");
    let port = dbaas_api::pgcluster::free_port().unwrap();
    let mut child = start_dev(&dir, port, &[]);
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_ready(&endpoint).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let expected_dir = if nix::unistd::geteuid().is_root() { 0o710 } else { 0o700 };
    assert_eq!(mode(&dir), expected_dir);
    assert_eq!(mode(&dir.join("master.key")), 0o600);
    assert_eq!(mode(&dir.join("env")), 0o600);
    let token = env_of(&std::fs::read_to_string(dir.join("env")).unwrap(), "DBAAS_TOKEN");
    let admin = Client::new(&endpoint, &token).unwrap();
    admin.create_tenant(&CreateTenant { name: "demo".into(), max_databases: None }).await.unwrap();

    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.join("state/pgdata/postmaster.pid").exists(), "the clusters outlive a SIGKILL");

    let mut child = start_dev(&dir, port, &[]);
    wait_ready(&endpoint).await;
    assert_eq!(admin.get_tenant("demo").await.unwrap().name, "demo");
    local_database(&admin, "after").await;
    assert!(sigterm(&mut child).success());
    assert!(!dir.join("state/pgdata/postmaster.pid").exists());
    assert!(!dir.join("local/pgdata/postmaster.pid").exists());
}
