//! Hosts: registration of the local machine discovers PostgreSQL and prepares the data root;
//! bad input is refused with nothing stored.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use dbaas_client::*;

fn local(name: &str, root: &str) -> CreateHost {
    common::hosts::local_req(name, root, [6000, 6099])
}

#[tokio::test(flavor = "multi_thread")]
async fn local_host_registration_and_bad_input() {
    let h = Harness::in_process().await;
    let root = h.dir.path().join("hosts/local-data");
    let host = h.admin.create_host(&local("local-1", root.to_str().unwrap())).await.unwrap();
    assert_eq!(host.kind, HostKind::Local);
    assert_eq!(host.port_range, [6000, 6099]);
    let v15 = host.pg_versions.iter().find(|v| v.version == "15").expect("PostgreSQL 15 found");
    assert!(v15.full_version.starts_with("PostgreSQL 15."), "{v15:?}");
    assert!(std::path::Path::new(&v15.bin_dir).join("initdb").exists());
    // The data root exists and belongs to postgres (when we are root, PostgreSQL runs as it).
    let meta = std::fs::metadata(&root).unwrap();
    if nix::unistd::geteuid().is_root() {
        let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), pg.uid.as_raw());
    }
    assert_eq!(h.admin.list_hosts().await.unwrap().len(), 1);
    assert_eq!(h.admin.get_host("local-1").await.unwrap(), host);

    // Bad input: each refused with the field named, nothing stored.
    let problem = |e: ClientError| e.problem().cloned().unwrap();
    let p = problem(h.admin.create_host(&local("local-1", root.to_str().unwrap())).await.unwrap_err());
    assert_eq!((p.status, p.code.as_str()), (409, "already_exists"));
    // Ports this machine gives outgoing connections cannot be instance ports.
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let lo: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    let inside_ephemeral = [lo - 10, lo + 10];
    let root2 = h.dir.path().join("hosts/h2");
    for (req, field) in [
        (local("Bad Name", "/var/tmp/x"), "name"),
        (local("h2", "relative/path"), "data_root"),
        (local("h2", "/var/tmp/../etc"), "data_root"),
        (local("h2", "/var/tmp/x;rm -rf /"), "data_root"),
        (CreateHost { port_range: Some([6100, 6000]), ..local("h2", "/var/tmp/x") }, "port_range"),
        (CreateHost { port_range: Some([80, 90]), ..local("h2", "/var/tmp/x") }, "port_range"),
        (CreateHost { port_range: Some(inside_ephemeral), ..local("h2", root2.to_str().unwrap()) }, "port_range"),
        (CreateHost { address: Some("10.0.0.1".into()), ..local("h2", "/var/tmp/x") }, "address"),
        (
            CreateHost { kind: HostKind::Ssh, address: Some("127.0.0.1".into()), ..local("h2", "/var/tmp/x") },
            "ssh_private_key",
        ),
        (
            CreateHost { kind: HostKind::Ssh, address: Some("-oProxyCommand=x".into()), ..local("h2", "/var/tmp/x") },
            "address",
        ),
    ] {
        let p = problem(h.admin.create_host(&req).await.unwrap_err());
        assert_eq!(p.status, 422, "{req:?}");
        assert_eq!(p.errors[0].field, field, "{req:?}: {p:?}");
    }
    // A data root the postgres user cannot use (a file in the way).
    let blocker = h.dir.path().join("hosts/blocker");
    std::fs::write(&blocker, "x").unwrap();
    let p = problem(h.admin.create_host(&local("h3", blocker.to_str().unwrap())).await.unwrap_err());
    assert_eq!(
        (p.status, p.errors[0].field.as_str(), p.errors[0].code.as_str()),
        (422, "data_root", "unusable"),
        "{p:?}"
    );
    assert_eq!(h.count("SELECT count(*) FROM hosts").await, 1);
    // Hosts are the platform's: tenants get 403.
    let t = h.tenant("team-a").await;
    assert_eq!(t.list_hosts().await.unwrap_err().status(), Some(403));
    h.admin.delete_host("local-1").await.unwrap();
    assert_eq!(h.admin.get_host("local-1").await.unwrap_err().status(), Some(404));
}
