//! Managed instances on a host reached over SSH: a real sshd started by the test, the
//! instance provisioned, changed and deleted through it, the connection reused.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::hosts::*;
use common::*;
use dbaas_api::pgcluster::free_port;
use dbaas_client::*;

fn ssh_host(name: &str, sshd: &Sshd, root: &str) -> CreateHost {
    CreateHost {
        name: name.into(),
        kind: HostKind::Ssh,
        address: Some("127.0.0.1".into()),
        ssh_port: Some(sshd.port),
        ssh_user: Some("root".into()),
        ssh_private_key: Some(sshd.client_key.clone()),
        ssh_known_host_key: Some(sshd.host_key.clone()),
        data_root: root.into(),
        port_range: Some([25500, 25509]),
        proxy_port: Some(25510),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_host_provisions_an_instance() {
    // Dropped after the API: nothing starts its clusters or proxy again once stopped.
    let dir = HostDir::new();
    let h = Harness::start().await;
    let sshd = Sshd::start();

    // Wrong host key, unreachable port, a key the server does not accept: clear errors,
    // nothing registered.
    let wrong_key = CreateHost { ssh_known_host_key: Some(sshd.other_key()), ..ssh_host("remote", &sshd, &dir.root()) };
    let e = h.admin.create_host(&wrong_key).await.unwrap_err();
    let p = problem(&e);
    assert_eq!(
        (p.errors[0].field.as_str(), p.errors[0].code.as_str()),
        ("ssh_known_host_key", "host_key_mismatch"),
        "{p:?}"
    );
    let dead = free_port().unwrap();
    let e = h
        .admin
        .create_host(&CreateHost { ssh_port: Some(dead), ..ssh_host("remote", &sshd, &dir.root()) })
        .await
        .unwrap_err();
    assert_eq!(
        (problem(&e).errors[0].field.as_str(), problem(&e).errors[0].code.as_str()),
        ("address", "host_unreachable")
    );
    let stranger = sshd.dir.path().join("stranger");
    let out = std::process::Command::new("/usr/bin/ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(out.status.success());
    let e = h
        .admin
        .create_host(&CreateHost {
            ssh_private_key: Some(std::fs::read_to_string(&stranger).unwrap()),
            ..ssh_host("remote", &sshd, &dir.root())
        })
        .await
        .unwrap_err();
    assert_eq!(problem(&e).errors[0].code, "host_unreachable", "{:?}", problem(&e));
    assert_eq!(h.count("SELECT count(*) FROM hosts").await, 0);

    // Registered over SSH: the data root prepared and PostgreSQL found through the connection.
    let host = h.admin.create_host(&ssh_host("remote", &sshd, &dir.root())).await.unwrap();
    assert_eq!(host.kind, HostKind::Ssh);
    assert!(host.pg_versions.iter().any(|v| v.version == "15"), "{host:?}");
    let stored: Vec<u8> = {
        let mut c = h.state_db().await;
        sqlx::query_scalar("SELECT ssh_private_key_enc FROM hosts").fetch_one(&mut c).await.unwrap()
    };
    assert!(!String::from_utf8_lossy(&stored).contains("PRIVATE KEY"), "the private key is stored encrypted");

    // Provisioned through SSH, used over TLS.
    h.admin
        .create_instance(&CreateInstance { settings: settings(&[("work_mem", "12MB")]), ..managed("pg-ssh", "remote") })
        .await
        .unwrap();
    let (op, inst) = settle(&h.admin, "pg-ssh").await;
    assert_eq!(
        op.status,
        OperationStatus::Succeeded,
        "{op:?}\n{}\nsshd:\n{}",
        log_text(&h.admin, op.id).await,
        sshd.log()
    );
    assert_eq!(inst.status, InstanceStatus::Ready);
    let a = h.tenant("team-s").await;
    let d = h
        .ready_database(
            &a,
            CreateDatabase { name: "over-ssh".into(), instance: Some("pg-ssh".into()), ..Default::default() },
        )
        .await;
    // Through the host's routing proxy, started and configured over SSH too.
    assert_eq!(d.port, 25510);
    let mut c = connect_as(&a.get_credential(d.id, Access::Write).await.unwrap()).await.unwrap();
    assert_eq!(show(&mut c, "work_mem").await, "12MB");
    // The files belong to the postgres user even though the SSH login is root.
    let data = std::path::Path::new(&dir.root()).join(&dir.instance_dirs()[0]).join("pgdata");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&data).unwrap());
    assert_eq!(Some(owner), nix::unistd::User::from_name("postgres").unwrap().map(|u| u.uid.as_raw()));
    // One connection carried all the commands of the provisioning (connection reuse).
    let logins = sshd.log().matches("Accepted publickey").count();
    assert!(logins <= 3, "expected the SSH connection to be reused, saw {logins} logins:\n{}", sshd.log());

    // Settings and delete go through the same connection.
    h.admin
        .update_instance(
            "pg-ssh",
            &UpdateInstance { settings: Some(settings(&[("work_mem", "24MB")])), ..Default::default() },
        )
        .await
        .unwrap();
    let (op, _) = settle(&h.admin, "pg-ssh").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);
    let gone = h.admin.delete_instance("pg-ssh", true).await.unwrap().unwrap();
    let op = h.admin.wait_operation(gone.last_operation_id.unwrap(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert!(dir.instance_dirs().is_empty());
    assert!(!listening(inst.port));
    h.admin.delete_host("remote").await.unwrap();
    assert!(!listening(25510), "the deleted host's proxy still listens");
}
