//! Placement on the least-loaded matching instance, and HTTPS serving.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dbaas_client::*;

fn instance(h: &Harness, name: &str, env: Environment, tier: &str, max: i32) -> CreateInstance {
    CreateInstance {
        environment: env,
        labels: BTreeMap::from([("tier".to_string(), tier.to_string())]),
        max_databases: max,
        ..instance_req(&h.target_pg, name)
    }
}

fn placed(env: Environment, tier: &str, name: &str) -> CreateDatabase {
    CreateDatabase {
        name: name.into(),
        placement: Some(Placement {
            environment: Some(env),
            labels: BTreeMap::from([("tier".to_string(), tier.to_string())]),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn placement_picks_least_loaded_match() {
    let h = Harness::start().await;
    let a = h.tenant("team-a").await;
    // "main" (sandbox, gold) from the harness; add another gold, a silver and a prod gold.
    h.admin.create_instance(&instance(&h, "gold-2", Environment::Sandbox, "gold", 2)).await.unwrap();
    h.admin.create_instance(&instance(&h, "silver", Environment::Sandbox, "silver", 10)).await.unwrap();
    h.admin.create_instance(&instance(&h, "prod-gold", Environment::Prod, "gold", 10)).await.unwrap();
    h.ready_database(&a, db_req("m1")).await; // main: 1 of 100 -> 1% load

    // gold-2 is emptier (0%): first placement goes there, then main (1%) vs gold-2 (50%).
    let d1 = h.ready_database(&a, placed(Environment::Sandbox, "gold", "p1")).await;
    assert_eq!(d1.instance, "gold-2");
    let d2 = h.ready_database(&a, placed(Environment::Sandbox, "gold", "p2")).await;
    assert_eq!(d2.instance, "main");
    // Never across environments: prod placement lands on the prod instance only, and is
    // protected by default there.
    let d3 = h.ready_database(&a, placed(Environment::Prod, "gold", "p3")).await;
    assert_eq!((d3.instance.as_str(), d3.mode), ("prod-gold", DatabaseMode::Protected));
    // Labels nobody has.
    let e = a.create_database(&placed(Environment::Sandbox, "platinum", "p4")).await.unwrap_err();
    assert_eq!(e.problem().unwrap().code, "no_matching_instance");
    // Full matching instances: no capacity.
    h.admin
        .send::<_, Instance>(
            reqwest::Method::PATCH,
            "/v1/instances/silver",
            Some(&UpdateInstance { max_databases: Some(0), ..Default::default() }),
            &[],
            None,
        )
        .await
        .unwrap();
    let e = a.create_database(&placed(Environment::Sandbox, "silver", "p5")).await.unwrap_err();
    assert_eq!(e.problem().unwrap().code, "no_capacity");
    let listed = a.list_databases("environment=prod").await.unwrap();
    assert_eq!(listed.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), vec!["p3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_https_with_given_certificate() {
    let h = Harness::start().await;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let dir = h.dir.path();
    std::fs::write(dir.join("api.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("api.key"), key.serialize_pem()).unwrap();

    let port = dbaas_api::pgcluster::free_port().unwrap();
    let serve = |cert: &str| {
        Command::new(BIN)
            .arg("serve")
            .env("DATABASE_URL", h.state.url.clone())
            .env("DBAAS_MASTER_KEY", &h.key)
            .env("DBAAS_LISTEN", format!("127.0.0.1:{port}"))
            .env("DBAAS_TLS_CERT", dir.join(cert))
            .env("DBAAS_TLS_KEY", dir.join("api.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A missing certificate fails at start with a clear message.
    let out = serve("missing.crt").wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loading TLS certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = serve("api.crt");
    let client = Client::with_ca(&format!("https://127.0.0.1:{port}"), &h.admin_token, Some(&ca_cert.pem())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let instances = loop {
        match client.list_instances().await {
            Ok(list) => break list,
            Err(e) => {
                assert!(Instant::now() < deadline, "HTTPS API not reachable: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(instances.len(), 1);
    // Plain HTTP is not served on the TLS port.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_err());
    let _ = child.kill();
    let _ = child.wait();
}
