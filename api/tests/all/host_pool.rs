//! SSH connections per host: an unreachable host (one that accepts TCP and never answers)
//! does not hold up operations on another host. There used to be one lock for all hosts,
//! held across the connect.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::hosts::Sshd;
use dbaas_api::crypto::MasterKey;
use dbaas_api::hosts::{HostPool, HostRecord};
use uuid::Uuid;

fn record(key: &MasterKey, port: u16, sshd: &Sshd) -> HostRecord {
    let id = Uuid::new_v4();
    HostRecord {
        id,
        name: format!("h{port}"),
        kind: dbaas_client::HostKind::Ssh,
        address: Some("127.0.0.1".into()),
        ssh_port: Some(i32::from(port)),
        ssh_user: Some("root".into()),
        ssh_private_key_enc: Some(key.encrypt(&sshd.client_key, &format!("host:{id}"))),
        ssh_known_host_key: Some(sshd.host_key.clone()),
        data_root: "/nonexistent".into(),
        port_range_start: 6000,
        port_range_end: 6099,
        pg_versions: sqlx::types::Json(vec![]),
        version: 1,
        created_at: chrono::Utc::now(),
        proxy_port: None,
        proxy_ca_cert: None,
        proxy_ca_key_enc: None,
        proxy_cert_not_after: None,
        proxy_cert_names: None,
        proxy_cert_tag: None,
        proxy_health: "unknown".into(),
        proxy_message: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_host_does_not_block_the_others() {
    let sshd = Sshd::start();
    let key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
    // Accepts connections and never says a word: ssh waits until its connect timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let pool = std::sync::Arc::new(HostPool::default());
    let dead = record(&key, silent_port, &sshd);
    let stuck = {
        let (pool, key, dead) = (pool.clone(), key.clone(), dead.clone());
        tokio::spawn(async move { pool.get(&dead, &key).await.map(|_| ()) })
    };
    // Let the first connect start and take whatever lock it takes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let good = record(&key, sshd.port, &sshd);
    pool.get(&good, &key).await.unwrap();
    assert!(!stuck.is_finished(), "the silent host answered?");
    let err = stuck.await.unwrap().unwrap_err();
    assert!(!err.to_string().is_empty());
    drop(silent);
}
