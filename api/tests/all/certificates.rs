//! Managed instances' server certificates: issued with a real validity, exported as a
//! metric, renewed automatically before they expire and on request, without changing the CA
//! clients pinned and without dropping sessions. What the server presents is read with
//! `openssl s_client`, independently of the service.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::hosts::*;
use common::*;
use dbaas_client::*;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection, PgConnection};

/// The end date and serial of the certificate the server on `port` presents.
fn presented(port: u16) -> (DateTime<Utc>, String) {
    let mut s_client = std::process::Command::new("openssl")
        .args(["s_client", "-starttls", "postgres", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut x509 = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-serial"])
        .stdin(s_client.stdout.take().unwrap())
        .output()
        .unwrap();
    s_client.wait().unwrap();
    assert!(x509.status.success(), "{}", String::from_utf8_lossy(&x509.stderr));
    let text = String::from_utf8(std::mem::take(&mut x509.stdout)).unwrap();
    let end = text.lines().find_map(|l| l.strip_prefix("notAfter=")).unwrap();
    let end = DateTime::parse_from_str(&end.replace(" GMT", " +0000"), "%b %e %H:%M:%S %Y %z").unwrap();
    let serial = text.lines().find_map(|l| l.strip_prefix("serial=")).unwrap().to_string();
    (end.with_timezone(&Utc), serial)
}

async fn verify_full(uri: &str, ca: &str) -> PgConnection {
    let opts: PgConnectOptions = uri.parse().unwrap();
    PgConnection::connect_with(&opts.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert_from_pem(ca.as_bytes().to_vec()))
        .await
        .expect("verify-full with the CA handed out at provisioning")
}

fn expiry_metric(text: &str, instance: &str) -> Option<i64> {
    let prefix = format!("dbaas_instance_certificate_expiry_timestamp_seconds{{dbaas_instance=\"{instance}\"");
    text.lines().find(|l| l.starts_with(&prefix))?.rsplit(' ').next()?.parse::<f64>().ok().map(|v| v as i64)
}

async fn service_metrics(h: &Harness) -> String {
    reqwest::get(format!("{}/metrics", h.endpoint())).await.unwrap().text().await.unwrap()
}

async fn renewals(h: &Harness, inst: &Instance) -> Vec<Operation> {
    let ops = h.admin.list_operations(&format!("target_id={}", inst.id)).await.unwrap();
    ops.into_iter().filter(|o| o.kind == OperationKind::RenewCertificate).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_renewed_before_they_expire() {
    // Valid 10 minutes, renewed when under 9 minutes remain: due a minute after issue.
    let env = vec![
        ("DBAAS_HEALTH_INTERVAL_MS".to_string(), "500".to_string()),
        ("DBAAS_TEST_CERT_SECS".to_string(), "600,540".to_string()),
    ];
    let h = Harness::start_with(ApiOptions { env, ..Default::default() }).await;
    let (_dir, _host) = local_host(&h, "box-c", [25500, 25509]).await;
    let a = h.tenant("team-a").await;
    h.admin.create_instance(&managed("pg-c", "box-c")).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-c").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);

    // Issued with the configured validity; the API, the metric and the server agree.
    let first = inst.managed.as_ref().unwrap().certificate_expires_at.expect("expiry recorded");
    let left = first - Utc::now();
    assert!(left > chrono::Duration::seconds(480) && left <= chrono::Duration::seconds(600), "{left}");
    let (served, first_serial) = presented(inst.port);
    assert_eq!(served, first);
    let text = service_metrics(&h).await;
    assert_eq!(expiry_metric(&text, "pg-c"), Some(first.timestamp()), "{text}");

    let ca = inst.ca_cert.clone().unwrap();
    let d = h
        .ready_database(&a, CreateDatabase { name: "app".into(), instance: Some("pg-c".into()), ..Default::default() })
        .await;
    let uri = a.get_credential(d.id, Access::Write).await.unwrap().uri;
    let mut open = verify_full(&uri, &ca).await;

    // The health check renews it once inside the window.
    let admin = h.admin.clone();
    let id = inst.id;
    wait_until("an automatic renewal", Duration::from_secs(150), || {
        let admin = admin.clone();
        async move {
            let ops = admin.list_operations(&format!("target_id={id}")).await.unwrap();
            ops.iter().any(|o| o.kind == OperationKind::RenewCertificate && o.status == OperationStatus::Succeeded)
        }
    })
    .await;
    let done = renewals(&h, &inst).await;
    let renewal = done.iter().find(|o| o.status == OperationStatus::Succeeded).unwrap();
    let log = log_text(&h.admin, renewal.id).await;
    assert!(log.contains("renewing it") && log.contains("presents the new certificate"), "{log}");
    let inst = h.admin.get_instance("pg-c").await.unwrap();
    let second = inst.managed.as_ref().unwrap().certificate_expires_at.unwrap();
    assert!(second > first, "{second} after {first}");
    let (served, serial) = presented(inst.port);
    assert_ne!(serial, first_serial, "the server presents a new certificate");
    assert!(served >= second, "served {served}, recorded {second}");
    assert_eq!(inst.ca_cert.as_deref(), Some(ca.as_str()), "the CA stays");
    assert_eq!(inst.status, InstanceStatus::Ready);
    // The open session survived; new ones verify against the CA pinned at the start.
    sqlx::query("SELECT 1").execute(&mut open).await.unwrap();
    verify_full(&uri, &ca).await;
    let metric = expiry_metric(&service_metrics(&h).await, "pg-c").unwrap();
    assert!(metric >= second.timestamp(), "{metric}");

    // On request too; an instance from before CA keys were kept gets a new CA (its clients
    // must fetch it again), said in the operation's log.
    let mut state = h.state_db().await;
    sqlx::query("UPDATE instances SET ca_key_enc = NULL WHERE id = $1")
        .bind(inst.id)
        .execute(&mut state)
        .await
        .unwrap();
    let requested = h.admin.instance_action("pg-c", InstanceActionKind::RenewCertificate).await.unwrap();
    let op = h.admin.wait_operation(requested.last_operation_id.unwrap(), Duration::from_secs(60)).await.unwrap();
    let log = log_text(&h.admin, op.id).await;
    assert_eq!((op.kind, op.status), (OperationKind::RenewCertificate, OperationStatus::Succeeded), "{log}");
    assert!(log.contains("issuing a new CA"), "{log}");
    let inst = h.admin.get_instance("pg-c").await.unwrap();
    let new_ca = inst.ca_cert.clone().unwrap();
    assert_ne!(new_ca, ca);
    verify_full(&uri, &new_ca).await;
    let opts: PgConnectOptions = uri.parse().unwrap();
    let old_ca = opts.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert_from_pem(ca.into_bytes());
    assert!(PgConnection::connect_with(&old_ca).await.is_err(), "the old CA no longer verifies");

    // Only managed, ready instances; external instances are refused with a field error.
    let e = h.admin.instance_action("main", InstanceActionKind::RenewCertificate).await.unwrap_err();
    assert_eq!(problem(&e).status, 422, "{e}");
}
