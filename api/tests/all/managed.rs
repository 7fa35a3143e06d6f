//! Managed instances on a local host: provisioning, databases over TLS, settings applied by
//! reload or restart, start/stop, delete, health checks, bad input and a crash mid-provision.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::hosts::*;
use common::*;
use dbaas_client::*;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection, PgConnection};

async fn started_at(c: &mut PgConnection) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT pg_postmaster_start_time()").fetch_one(c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_one_host_settings_actions_delete() {
    let h = Harness::start().await;
    let (dir, _host) = local_host(&h, "box-1", [25100, 25199]).await;
    let a = h.tenant("team-a").await;

    let one = h
        .admin
        .create_instance(&CreateInstance { settings: settings(&[("work_mem", "8MB")]), ..managed("pg-one", "box-1") })
        .await
        .unwrap();
    assert_eq!((one.kind, one.status), (InstanceKind::Managed, InstanceStatus::Provisioning));
    let two = h.admin.create_instance(&managed("pg-two", "box-1")).await.unwrap();
    assert_ne!(one.port, two.port, "ports on one host never collide");
    assert!((25100..=25199).contains(&one.port) && (25100..=25199).contains(&two.port));
    for name in ["pg-one", "pg-two"] {
        let (op, inst) = settle(&h.admin, name).await;
        assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_text(&h.admin, op.id).await);
        assert_eq!(inst.status, InstanceStatus::Ready);
        let details = inst.managed.clone().unwrap();
        assert_eq!((details.host.as_str(), details.version.as_str()), ("box-1", "15"));
        assert!(details.ready_in_ms.unwrap() > 0);
        assert!(inst.server_version.starts_with("15"), "{}", inst.server_version);
        let log = log_text(&h.admin, op.id).await;
        for step in
            ["data directory", "initdb", "configuration", "TLS certificate", "starting", "service admin role", "ready:"]
        {
            assert!(log.contains(step), "missing step {step:?} in:\n{log}");
        }
    }
    assert_eq!(dir.instance_dirs().len(), 2);

    // Databases on each, reached over TLS as each role; verify-full with the instance's CA.
    for name in ["pg-one", "pg-two"] {
        let inst = h.admin.get_instance(name).await.unwrap();
        let d = h
            .ready_database(
                &a,
                CreateDatabase { name: format!("app-{name}"), instance: Some(name.into()), ..Default::default() },
            )
            .await;
        for access in [Access::Read, Access::Write, Access::Admin] {
            let cred = a.get_credential(d.id, access).await.unwrap();
            assert!(cred.uri.contains(&format!(":{}/", inst.port)), "{}", cred.uri);
            let mut c = connect_as(&cred).await.unwrap();
            let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert!(ssl, "{access:?} connected without TLS");
        }
        let cred = a.get_credential(d.id, Access::Write).await.unwrap();
        let opts: PgConnectOptions = cred.uri.parse().unwrap();
        let ca = inst.ca_cert.clone().expect("managed instances publish their CA");
        PgConnection::connect_with(
            &opts.clone().ssl_mode(PgSslMode::VerifyFull).ssl_root_cert_from_pem(ca.into_bytes()),
        )
        .await
        .expect("verify-full with the instance CA");
        // No TLS: refused by pg_hba (only hostssl lines exist).
        let e = PgConnection::connect_with(&opts.ssl_mode(PgSslMode::Disable)).await.unwrap_err();
        assert_eq!(sqlstate(&e), "28000", "{e}");
    }

    // Settings: a reload-only change is applied without restart...
    let inst = h.admin.get_instance("pg-one").await.unwrap();
    let d = a.find_database("team-a", "app-pg-one").await.unwrap();
    let mut admin_conn = connect_as(&a.get_credential(d.id, Access::Admin).await.unwrap()).await.unwrap();
    assert_eq!(show(&mut admin_conn, "work_mem").await, "8MB");
    let before = started_at(&mut admin_conn).await;
    let upd = h
        .admin
        .update_instance(
            "pg-one",
            &UpdateInstance { settings: Some(settings(&[("work_mem", "16MB")])), ..Default::default() },
        )
        .await
        .unwrap();
    assert_ne!(upd.last_operation_id, inst.last_operation_id);
    let (op, inst) = settle(&h.admin, "pg-one").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert!(log_text(&h.admin, op.id).await.contains("applied by reload, no restart needed"));
    assert_eq!(inst.managed.as_ref().unwrap().settings, settings(&[("work_mem", "16MB")]));
    let mut c = connect_as(&a.get_credential(d.id, Access::Admin).await.unwrap()).await.unwrap();
    assert_eq!(show(&mut c, "work_mem").await, "16MB");
    assert_eq!(started_at(&mut c).await, before, "a reload must not restart the server");
    sqlx::query("SELECT 1").execute(&mut admin_conn).await.expect("sessions survive a reload");

    // ...a restart-only change restarts, and says so.
    let new = settings(&[("work_mem", "16MB"), ("shared_buffers", "48MB")]);
    h.admin
        .update_instance("pg-one", &UpdateInstance { settings: Some(new.clone()), ..Default::default() })
        .await
        .unwrap();
    let (op, inst) = settle(&h.admin, "pg-one").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_text(&h.admin, op.id).await);
    let log = log_text(&h.admin, op.id).await;
    assert!(
        log.contains("restart needed for shared_buffers") && log.contains("restarted to apply shared_buffers"),
        "{log}"
    );
    assert_eq!(inst.managed.as_ref().unwrap().settings, new);
    let mut c = connect_as(&a.get_credential(d.id, Access::Admin).await.unwrap()).await.unwrap();
    assert_eq!(show(&mut c, "shared_buffers").await, "48MB");
    assert!(started_at(&mut c).await > before);

    // ...and so does removing a restart-only setting that no file sets any more (the server
    // reports that change as an error row with no file and no name: no rejected setting).
    for (step, want) in [
        (&settings(&[("work_mem", "16MB"), ("shared_buffers", "48MB"), ("max_prepared_transactions", "10")]), "10"),
        (&new, "0"),
    ] {
        let restarted = started_at(&mut c).await;
        h.admin
            .update_instance("pg-one", &UpdateInstance { settings: Some(step.clone()), ..Default::default() })
            .await
            .unwrap();
        let (op, inst) = settle(&h.admin, "pg-one").await;
        assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_text(&h.admin, op.id).await);
        assert_eq!(&inst.managed.as_ref().unwrap().settings, step);
        c = connect_as(&a.get_credential(d.id, Access::Admin).await.unwrap()).await.unwrap();
        assert_eq!(show(&mut c, "max_prepared_transactions").await, want);
        assert!(started_at(&mut c).await > restarted);
    }

    // An invalid value is refused before anything changes, with the server's own words.
    let e = h
        .admin
        .update_instance(
            "pg-one",
            &UpdateInstance { settings: Some(settings(&[("work_mem", "lots")])), ..Default::default() },
        )
        .await
        .unwrap_err();
    let p = problem(&e);
    assert_eq!(
        (p.status, p.errors[0].field.as_str(), p.errors[0].code.as_str()),
        (422, "settings.work_mem", "invalid_value")
    );
    assert!(p.errors[0].message.contains("invalid value for parameter \"work_mem\""), "{p:?}");
    assert_eq!(h.admin.get_instance("pg-one").await.unwrap().managed.unwrap().settings, new);

    // Stop and start.
    h.admin.instance_action("pg-two", InstanceActionKind::Stop).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-two").await;
    assert_eq!((op.status, inst.status), (OperationStatus::Succeeded, InstanceStatus::Stopped));
    assert!(!listening(inst.port));
    let e = h.admin.instance_action("pg-two", InstanceActionKind::Restart).await.unwrap_err();
    assert_eq!(problem(&e).code, "invalid_state");
    h.admin.instance_action("pg-two", InstanceActionKind::Start).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-two").await;
    assert_eq!((op.status, inst.status), (OperationStatus::Succeeded, InstanceStatus::Ready));
    assert!(listening(inst.port));

    // Delete: refused while it holds databases, unless forced; protected: never.
    let e = h.admin.delete_instance("pg-two", false).await.unwrap_err();
    assert_eq!(problem(&e).code, "instance_in_use");
    h.admin.update_instance("pg-two", &UpdateInstance { protected: Some(true), ..Default::default() }).await.unwrap();
    let e = h.admin.delete_instance("pg-two", true).await.unwrap_err();
    assert_eq!(problem(&e).code, "protected");
    h.admin.update_instance("pg-two", &UpdateInstance { protected: Some(false), ..Default::default() }).await.unwrap();
    let port_two = inst.port;
    let deleting = h.admin.delete_instance("pg-two", true).await.unwrap().expect("managed: an operation");
    assert_eq!(deleting.status, InstanceStatus::Deleting);
    let op = h.admin.wait_operation(deleting.last_operation_id.unwrap(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert_eq!(h.admin.get_instance("pg-two").await.unwrap_err().status(), Some(404));
    assert!(!listening(port_two), "the cluster is stopped");
    assert_eq!(dir.instance_dirs().len(), 1, "its directory is gone: {:?}", dir.instance_dirs());
    let gone = a.find_database("team-a", "app-pg-two").await;
    assert_eq!(gone.unwrap_err().status(), Some(404), "its databases went with it");

    // The name and port are free again.
    let again =
        h.admin.create_instance(&CreateInstance { port: Some(port_two), ..managed("pg-two", "box-1") }).await.unwrap();
    assert_eq!(again.port, port_two);
    let (op, _) = settle(&h.admin, "pg-two").await;
    assert_eq!(op.status, OperationStatus::Succeeded);
    let gone = h.admin.delete_instance("pg-two", false).await.unwrap().unwrap();
    let op = h.admin.wait_operation(gone.last_operation_id.unwrap(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(dir.instance_dirs().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_leaves_nothing_behind() {
    let h = Harness::start().await;
    let (dir, _host) = local_host(&h, "box-2", [25200, 25209]).await;
    let base = managed("pg-bad", "box-2");
    // Something else listens on a port of the range.
    let squatter = std::net::TcpListener::bind("0.0.0.0:25205").unwrap();

    let cases: Vec<(CreateInstance, &str, &str)> = vec![
        (CreateInstance { version: Some("99".into()), ..base.clone() }, "version", "unknown_version"),
        (CreateInstance { version: None, ..base.clone() }, "version", "required"),
        (CreateInstance { port: Some(25300), ..base.clone() }, "port", "out_of_range"),
        (CreateInstance { port: Some(25205), ..base.clone() }, "port", "port_in_use"),
        (CreateInstance { host: "nowhere".into(), ..base.clone() }, "host", "unknown_host"),
        (
            CreateInstance { settings: settings(&[("no_such_setting", "1")]), ..base.clone() },
            "settings.no_such_setting",
            "not_allowed",
        ),
        (
            CreateInstance { settings: settings(&[("archive_command", "sh -c id")]), ..base.clone() },
            "settings.archive_command",
            "not_allowed",
        ),
        (
            CreateInstance { settings: settings(&[("shared_buffers", "12XB")]), ..base.clone() },
            "settings.shared_buffers",
            "invalid_value",
        ),
        (
            CreateInstance { settings: settings(&[("max_connections", "-5")]), ..base.clone() },
            "settings.max_connections",
            "invalid_value",
        ),
        (CreateInstance { settings: settings(&[("port", "5432")]), ..base.clone() }, "settings.port", "reserved"),
        (CreateInstance { settings: settings(&[("ssl", "off")]), ..base.clone() }, "settings.ssl", "reserved"),
        (
            CreateInstance { settings: settings(&[("bad name", "1")]), ..base.clone() },
            "settings.bad name",
            "invalid_name",
        ),
        (CreateInstance { admin_user: Some("postgres".into()), ..base.clone() }, "admin_user", "external_only"),
        (
            CreateInstance { allowed_extensions: vec!["no_such_ext".into()], ..base.clone() },
            "allowed_extensions[0]",
            "unavailable",
        ),
        (
            CreateInstance { dedicated_tenant: Some("nobody".into()), ..base.clone() },
            "dedicated_tenant",
            "unknown_tenant",
        ),
    ];
    for (req, field, code) in cases {
        let e = h.admin.create_instance(&req).await.unwrap_err();
        let p = problem(&e);
        assert_eq!(p.status, 422, "{field}: {p:?}");
        assert!(p.errors.iter().any(|f| f.field == field && f.code == code), "{field}/{code}: {p:?}");
    }
    // The server's own message explains a bad value.
    let e = h
        .admin
        .create_instance(&CreateInstance { settings: settings(&[("shared_buffers", "12XB")]), ..base.clone() })
        .await
        .unwrap_err();
    assert!(problem(&e).errors[0].message.contains("Valid units for this parameter"), "{:?}", problem(&e));
    // Nothing recorded, nothing on the host, nothing running.
    assert_eq!(h.count("SELECT count(*) FROM instances WHERE kind = 'managed'").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM operations WHERE target_kind = 'instance'").await, 0);
    assert!(dir.instance_dirs().is_empty(), "{:?}", dir.instance_dirs());

    // Allocation skips the busy port; a port already taken by an instance is refused.
    let mut taken = Vec::new();
    for i in 0..3 {
        let inst = h
            .admin
            .create_instance(&CreateInstance { port: None, ..managed(&format!("pg-{i}"), "box-2") })
            .await
            .unwrap();
        taken.push(inst.port);
    }
    assert_eq!(taken, vec![25200, 25201, 25202]);
    let e =
        h.admin.create_instance(&CreateInstance { port: Some(25201), ..managed("pg-x", "box-2") }).await.unwrap_err();
    assert_eq!((problem(&e).status, problem(&e).errors[0].code.as_str()), (422, "port_taken"));
    for i in 0..3 {
        let (op, _) = settle(&h.admin, &format!("pg-{i}")).await;
        assert_eq!(op.status, OperationStatus::Succeeded);
    }

    // Past every check, the server still refuses to start (each value is valid, but WAL
    // streaming needs more than minimal WAL, which the server checks only when starting):
    // the provisioning fails and removes what it made.
    let bad = CreateInstance {
        settings: settings(&[("wal_level", "minimal"), ("max_wal_senders", "3")]),
        ..managed("pg-nolib", "box-2")
    };
    h.admin.create_instance(&bad).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-nolib").await;
    assert_eq!((op.status, inst.status), (OperationStatus::Failed, InstanceStatus::Failed));
    let log = log_text(&h.admin, op.id).await;
    assert!(log.contains("wal_level"), "the server log's reason is reported:\n{log}");
    assert!(log.contains("removing what provisioning made"), "{log}");
    assert_eq!(dir.instance_dirs().len(), 3, "{:?}", dir.instance_dirs());
    assert!(!listening(inst.port));
    // A failed instance is deleted without a trace.
    let gone = h.admin.delete_instance("pg-nolib", false).await.unwrap().unwrap();
    let op = h.admin.wait_operation(gone.last_operation_id.unwrap(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    drop(squatter);

    // Placement: a dedicated instance only takes its tenant's databases.
    let t = h.tenant("team-d").await;
    let other = h.tenant("team-o").await;
    h.admin
        .create_instance(&CreateInstance { dedicated_tenant: Some("team-d".into()), ..managed("pg-ded", "box-2") })
        .await
        .unwrap();
    let (op, inst) = settle(&h.admin, "pg-ded").await;
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(inst.dedicated_tenant.as_deref(), Some("team-d"));
    h.ready_database(&t, CreateDatabase { name: "mine".into(), instance: Some("pg-ded".into()), ..Default::default() })
        .await;
    let e = other
        .create_database(&CreateDatabase {
            name: "theirs".into(),
            instance: Some("pg-ded".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(problem(&e).status, 422, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_provision_completes_after_restart() {
    // Each step pauses, so the kill lands inside the provisioning.
    let mut h = Harness::start_with(ApiOptions { step_delay_ms: 700, lease_ms: 2000, ..Default::default() }).await;
    let (dir, _host) = local_host(&h, "box-3", [25300, 25309]).await;
    let inst = h.admin.create_instance(&managed("pg-k", "box-3")).await.unwrap();
    let op_id = inst.last_operation_id.unwrap();
    let admin = h.admin.clone();
    wait_until("provisioning to pass initdb", Duration::from_secs(60), || {
        let admin = admin.clone();
        async move { log_text(&admin, op_id).await.contains("configuration:") }
    })
    .await;
    h.apis[0].kill();
    let i = h.spawn_api(ApiOptions::default()).await;
    h.admin = Client::new(&h.apis[i].endpoint, &h.admin_token).unwrap();
    let admin = h.admin.clone();
    let op = admin.wait_operation(op_id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}\n{}", log_text(&admin, op_id).await);
    assert!(op.attempts >= 2, "resumed by a second attempt: {op:?}");
    let log = log_text(&admin, op_id).await;
    assert!(log.contains("initdb: already done"), "the finished initdb is not redone:\n{log}");
    let inst = admin.get_instance("pg-k").await.unwrap();
    assert_eq!(inst.status, InstanceStatus::Ready);
    assert_eq!(dir.instance_dirs().len(), 1);
    let a = h.tenant("team-k").await;
    let d = h
        .ready_database(
            &a,
            CreateDatabase { name: "after-crash".into(), instance: Some("pg-k".into()), ..Default::default() },
        )
        .await;
    connect_as(&a.get_credential(d.id, Access::Write).await.unwrap()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_cluster_is_reported_and_restarted() {
    let env = vec![("DBAAS_HEALTH_INTERVAL_MS".to_string(), "500".to_string())];
    let h = Harness::start_with(ApiOptions { env, ..Default::default() }).await;
    let (dir, _host) = local_host(&h, "box-4", [25400, 25409]).await;
    h.admin.create_instance(&managed("pg-h", "box-4")).await.unwrap();
    let (op, inst) = settle(&h.admin, "pg-h").await;
    assert_eq!(op.status, OperationStatus::Succeeded);
    // Kill the cluster behind the service's back.
    let data = std::path::Path::new(&dir.root()).join(&dir.instance_dirs()[0]).join("pgdata");
    let pid: i32 =
        std::fs::read_to_string(data.join("postmaster.pid")).unwrap().lines().next().unwrap().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let admin = h.admin.clone();
    let first = inst.last_operation_id;
    wait_until("the health check to restart the cluster", Duration::from_secs(60), || {
        let admin = admin.clone();
        async move {
            let i = admin.get_instance("pg-h").await.unwrap();
            i.last_operation_id != first
        }
    })
    .await;
    let (op, inst) = settle(&h.admin, "pg-h").await;
    let log = log_text(&h.admin, op.id).await;
    assert_eq!((op.kind, op.status), (OperationKind::StartInstance, OperationStatus::Succeeded), "{op:?}\n{log}");
    assert!(log.contains("health check: the server is down"), "{log}");
    assert!(listening(inst.port));
    assert_eq!(inst.managed.unwrap().health.unwrap().status, HealthStatus::Healthy);
}
