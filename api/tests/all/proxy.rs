//! The routing proxy (a real pgbouncer) in front of managed instances: two instances behind
//! one port, used with `psql` and `pgbench` verifying the proxy with the CA the API hands
//! out; tenants kept apart; no password on the host; a SIGKILLed proxy started again with
//! its configuration; rotations, leases and a revocation that reaches a pooled connection;
//! an in-place instance restore behind the same address.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::hosts::*;
use common::*;
use dbaas_client::*;

/// What a client is told for one credential, as libpq connection parameters
/// (`verify-full` against the CA the API returned).
pub(crate) struct Conninfo {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: String,
    pub ca: std::path::PathBuf,
}

impl Conninfo {
    pub fn of(db: &Database, cred: &Credential, dir: &std::path::Path) -> Self {
        let ca = dir.join(format!("ca-{}.pem", cred.id));
        std::fs::write(&ca, cred.ca_cert.clone().expect("a CA")).unwrap();
        Self {
            host: db.host.clone(),
            port: db.port,
            dbname: db.physical_name.clone(),
            user: cred.username.clone(),
            password: cred.password.clone(),
            ca,
        }
    }

    pub fn string(&self) -> String {
        format!(
            "host={} port={} dbname={} user={} password={} sslmode=verify-full sslrootcert={} connect_timeout=5",
            self.host,
            self.port,
            self.dbname,
            self.user,
            self.password,
            self.ca.display()
        )
    }
}

/// A client program with nothing from this machine's environment or home directory.
fn client(program: &str) -> Command {
    let mut c = Command::new(format!("/usr/lib/postgresql/15/bin/{program}"));
    c.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", "/nonexistent").env("PGAPPNAME", "proxy-test");
    c
}

/// `psql -c sql` through `conn`: its output, or its error.
pub(crate) fn psql(conn: &str, sql: &str) -> Result<String, String> {
    let out = client("psql").args(["-X", "-q", "-A", "-t", "-d", conn, "-c", sql]).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn pgbench(conn: &str, args: &[&str]) -> String {
    let out = client("pgbench").args(args).arg(conn).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pgbench {args:?}: {text}");
    text
}

fn proxy_pid(dir: &HostDir) -> Option<i32> {
    std::fs::read_to_string(format!("{}/.proxy/pgbouncer.pid", dir.root())).ok()?.trim().parse().ok()
}

pub(crate) async fn creds(c: &Client, db: &Database) -> (Credential, Credential, Credential) {
    let r = c.get_credential(db.id, Access::Read).await.unwrap();
    let w = c.get_credential(db.id, Access::Write).await.unwrap();
    let a = c.get_credential(db.id, Access::Admin).await.unwrap();
    (r, w, a)
}

pub(crate) fn proxied() -> ApiOptions {
    ApiOptions { env: vec![("DBAAS_HEALTH_INTERVAL_MS".into(), "1000".into())], ..Default::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_behind_one_proxy_port_with_tls_scram_and_isolation() {
    // Declared first, dropped last: its clusters and proxy are stopped once the API (which
    // would start them again) is gone.
    let dir = HostDir::new();
    let h = Harness::start_with(proxied()).await;
    let req = CreateHost { proxy_port: Some(25990), ..local_req("px-box", &dir.root(), [25960, 25969]) };
    let host = h.admin.create_host(&req).await.unwrap();
    assert_eq!(host.proxy_port, Some(25990));
    // The proxy's port is checked like the instances' range.
    for (bad, field) in [
        (CreateHost { proxy_port: Some(25961), ..local_req("px-bad", &dir.root(), [25960, 25969]) }, "proxy_port"),
        (CreateHost { proxy_port: Some(80), ..local_req("px-bad", &dir.root(), [25960, 25969]) }, "proxy_port"),
    ] {
        let e = h.admin.create_host(&bad).await.unwrap_err();
        assert_eq!((problem(&e).status, problem(&e).errors[0].field.as_str()), (422, field), "{e}");
    }
    for name in ["px-one", "px-two"] {
        h.admin.create_instance(&managed(name, "px-box")).await.unwrap();
    }
    for name in ["px-one", "px-two"] {
        let (op, inst) = settle(&h.admin, name).await;
        assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);
        assert_ne!(inst.port, 25990);
    }
    let a = h.tenant("team-a").await;
    let b = h.tenant("team-b").await;
    let shop = h
        .ready_database(
            &a,
            CreateDatabase { name: "shop".into(), instance: Some("px-one".into()), ..Default::default() },
        )
        .await;
    let ledger = h
        .ready_database(
            &b,
            CreateDatabase { name: "ledger".into(), instance: Some("px-two".into()), ..Default::default() },
        )
        .await;
    // One address for both: the proxy's, not an instance's port.
    assert_eq!((shop.host.as_str(), shop.port), ("127.0.0.1", 25990));
    assert_eq!((ledger.host.as_str(), ledger.port), ("127.0.0.1", 25990));
    assert_eq!(shop.pool_mode, PoolMode::Session);

    let tmp = tempdir();
    let (sr, sw, sa) = creds(&a, &shop).await;
    let (_, lw, _) = creds(&b, &ledger).await;
    assert!(sw.uri.contains(":25990/"), "{}", sw.uri);
    let (read, write, admin) = (
        Conninfo::of(&shop, &sr, tmp.path()),
        Conninfo::of(&shop, &sw, tmp.path()),
        Conninfo::of(&shop, &sa, tmp.path()),
    );
    let other = Conninfo::of(&ledger, &lw, tmp.path());

    // psql, verifying the proxy's certificate (verify-full) with the CA the API gave; the
    // proxy verifies the cluster's in turn and the session is TLS end to end.
    assert_eq!(psql(&admin.string(), "CREATE TABLE t (i int); GRANT SELECT ON t TO PUBLIC").map(|_| ()), Ok(()));
    psql(&write.string(), "INSERT INTO t VALUES (1), (2)").unwrap();
    assert_eq!(psql(&read.string(), "SELECT sum(i) FROM t").unwrap(), "3");
    assert_eq!(psql(&read.string(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").unwrap(), "t");
    let e = psql(&read.string(), "INSERT INTO t VALUES (3)").unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
    psql(&other.string(), "CREATE TABLE l (x int)").unwrap_err();
    psql(&Conninfo::of(&ledger, &creds(&b, &ledger).await.2, tmp.path()).string(), "CREATE TABLE l (x int)").unwrap();

    // pgbench through the proxy: initialised by the admin role, run by the write role.
    pgbench(&admin.string(), &["-i", "-s", "1", "-q"]);
    psql(&admin.string(), "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO PUBLIC").unwrap();
    let run = pgbench(&write.string(), &["-c", "4", "-j", "2", "-t", "50", "-n"]);
    assert!(run.contains("number of failed transactions: 0"), "{run}");

    // Isolation: another tenant's login, the console, no TLS, a wrong CA, a wrong password.
    let cross = Conninfo { dbname: ledger.physical_name.clone(), ..Conninfo::of(&shop, &sw, tmp.path()) };
    let e = psql(&cross.string(), "SELECT 1").unwrap_err();
    assert!(!e.is_empty(), "tenant A reached tenant B's database through the proxy");
    let console = Conninfo { dbname: "pgbouncer".into(), ..Conninfo::of(&shop, &sa, tmp.path()) };
    let e = psql(&console.string(), "SHOW POOLS").unwrap_err();
    assert!(e.contains("not allowed") || e.contains("rejected"), "{e}");
    let plain = format!(
        "host=127.0.0.1 port=25990 dbname={} user={} password={} sslmode=disable",
        shop.physical_name, sw.username, sw.password
    );
    assert!(psql(&plain, "SELECT 1").is_err(), "the proxy served a client without TLS");
    let wrong_ca = tmp.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, h.admin.get_instance("px-one").await.unwrap().ca_cert.unwrap()).unwrap();
    let e = psql(&format!("{} sslrootcert={}", write.string(), wrong_ca.display()), "SELECT 1").unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");
    let e = psql(&format!("{} password=wrong", write.string()), "SELECT 1").unwrap_err();
    assert!(e.contains("password authentication failed") || e.contains("SASL"), "{e}");

    // On the host: files 0600 of the postgres user, no password in any of them.
    let proxy_dir = format!("{}/.proxy", dir.root());
    for f in ["pgbouncer.ini", "userlist.txt", "hba.conf"] {
        let meta = std::fs::metadata(format!("{proxy_dir}/{f}")).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
        assert_eq!(meta.uid(), nix::unistd::User::from_name("postgres").unwrap().unwrap().uid.as_raw(), "{f}");
    }
    for entry in std::fs::read_dir(&proxy_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for c in [&sr, &sw, &sa, &lw] {
                assert!(!text.contains(&c.password), "a password in {}", path.display());
            }
        }
    }
    let users = std::fs::read_to_string(format!("{proxy_dir}/userlist.txt")).unwrap();
    assert!(users.contains(&format!("\"{}\" \"SCRAM-SHA-256$4096:", sw.username)), "{users}");

    // The proxy's metrics, under pgbouncer_exporter's names.
    wait_until("the proxy's pools in the metrics", Duration::from_secs(30), || async {
        let text = reqwest::get(format!("{}/metrics", h.apis[0].endpoint)).await.unwrap().text().await.unwrap();
        text.contains("pgbouncer_up{dbaas_host=\"px-box\"} 1")
            && text.contains(&format!(
                "pgbouncer_pools_server_idle_connections{{dbaas_host=\"px-box\",database=\"{}\"",
                shop.physical_name
            ))
    })
    .await;

    // SIGKILL: the service starts it again, with its configuration.
    let pid = proxy_pid(&dir).expect("a running proxy");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let start = Instant::now();
    loop {
        if proxy_pid(&dir).is_some_and(|p| p != pid) && psql(&read.string(), "SELECT count(*) FROM t").is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the proxy was not started again");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(psql(&read.string(), "SELECT sum(i) FROM t").unwrap(), "3");
    // Its files lost or edited on the host: rebuilt from the state database and reloaded.
    let userlist = format!("{proxy_dir}/userlist.txt");
    std::fs::write(&userlist, "\"nobody\" \"x\"\n").unwrap();
    std::fs::remove_file(format!("{proxy_dir}/pgbouncer.ini")).unwrap();
    wait_until("the proxy's files rebuilt", Duration::from_secs(30), || async {
        std::fs::read_to_string(&userlist).is_ok_and(|t| t.contains(&sr.username))
            && std::path::Path::new(&format!("{proxy_dir}/pgbouncer.ini")).exists()
    })
    .await;
    let host = h.admin.get_host("px-box").await.unwrap();
    assert_eq!(host.proxy_health, Some(HealthStatus::Healthy), "{host:?}");

    // Deleting a database takes it out of the proxy.
    let acc = b.delete_database(ledger.id, false).await.unwrap();
    b.wait_operation(acc.operation.unwrap().id, Duration::from_secs(60)).await.unwrap();
    let ini = std::fs::read_to_string(format!("{proxy_dir}/pgbouncer.ini")).unwrap();
    assert!(!ini.contains(&ledger.physical_name), "{ini}");
    assert!(ini.contains(&shop.physical_name), "{ini}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotations_leases_and_revocations_reach_pooled_connections_and_a_restore_keeps_the_address() {
    // Declared first, dropped last: its clusters and proxy are stopped once the API (which
    // would start them again) is gone.
    let dir = HostDir::new();
    let h = Harness::start_with(proxied()).await;
    let req = CreateHost { proxy_port: Some(25991), ..local_req("px-pool", &dir.root(), [25970, 25979]) };
    h.admin.create_host(&req).await.unwrap();
    let inst = CreateInstance { settings: settings(&[("archive_timeout", "2s")]), ..managed("px-pg", "px-pool") };
    h.admin.create_instance(&inst).await.unwrap();
    let (op, _) = settle(&h.admin, "px-pg").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);
    let a = h.tenant("team-a").await;
    let db = h
        .ready_database(
            &a,
            CreateDatabase {
                name: "app".into(),
                instance: Some("px-pg".into()),
                pool_mode: Some(PoolMode::Transaction),
                ..Default::default()
            },
        )
        .await;
    assert_eq!((db.port, db.pool_mode), (25991, PoolMode::Transaction));
    let tmp = tempdir();
    let (_, w, adm) = creds(&a, &db).await;
    let admin = Conninfo::of(&db, &adm, tmp.path());
    psql(&admin.string(), "CREATE TABLE t (i int); GRANT SELECT ON t TO PUBLIC; INSERT INTO t VALUES (1)").unwrap();

    // A lease, used through the proxy with a connection that stays open (its server
    // connection pooled between transactions).
    let lease = a.create_lease(db.id, &CreateLease { access: Access::Read, ttl: "1h".into() }).await.unwrap();
    a.wait_operation(lease.operation.unwrap().id, Duration::from_secs(60)).await.unwrap();
    let lease = lease.credential;
    let lease_conn = Conninfo::of(&db, &lease, tmp.path());
    let opts: sqlx::postgres::PgConnectOptions = format!(
        "postgresql://{}:{}@127.0.0.1:25991/{}?sslmode=verify-full&sslrootcert={}",
        lease.username,
        lease.password,
        db.physical_name,
        lease_conn.ca.display()
    )
    .parse()
    .unwrap();
    // Simple queries only: no protocol-level prepared statements in transaction mode.
    let mut pooled = sqlx::ConnectOptions::connect(&opts.statement_cache_capacity(0)).await.unwrap();
    let n: i64 = sqlx::raw_sql("SELECT count(*) FROM t")
        .fetch_one(&mut pooled)
        .await
        .map(|r| {
            use sqlx::Row;
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 1);
    // A session-bound client connected with the write role before its rotation.
    let before = Conninfo::of(&db, &w, tmp.path());
    let mut session = sqlx::ConnectOptions::connect(
        &format!(
            "postgresql://{}:{}@127.0.0.1:25991/{}?sslmode=verify-full&sslrootcert={}",
            w.username,
            w.password,
            db.physical_name,
            before.ca.display()
        )
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .statement_cache_capacity(0),
    )
    .await
    .unwrap();

    // Rotation: the new password works through the proxy at once, the old one no longer.
    let rot = a.rotate_credential(db.id, Access::Write).await.unwrap();
    let op = a.wait_operation(rot.operation.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    let w2 = a.get_credential(db.id, Access::Write).await.unwrap();
    assert_ne!(w2.password, w.password);
    assert_eq!(psql(&Conninfo::of(&db, &w2, tmp.path()).string(), "SELECT count(*) FROM t").unwrap(), "1");
    assert!(psql(&before.string(), "SELECT 1").is_err(), "the old password still logs in through the proxy");
    // The client connected before keeps working (its login was checked when it connected).
    sqlx::raw_sql("SELECT 1").execute(&mut session).await.unwrap();

    // Revocation: the already-pooled connection gets no query through, a new one no login.
    let acc = a.revoke_lease(db.id, lease.id).await.unwrap();
    let op = a.wait_operation(acc.operation.unwrap().id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&a, op.id).await);
    let r = sqlx::raw_sql("SELECT count(*) FROM t").execute(&mut pooled).await;
    assert!(r.is_err(), "a revoked lease ran a query through its pooled connection");
    assert!(psql(&lease_conn.string(), "SELECT 1").is_err(), "a revoked lease logged in through the proxy");
    let users = std::fs::read_to_string(format!("{}/.proxy/userlist.txt", dir.root())).unwrap();
    assert!(!users.contains(&lease.username), "{users}");

    // Pool mode back to session: a PATCH, applied by a reload.
    let acc = a
        .update_database(db.id, &UpdateDatabase { pool_mode: Some(PoolMode::Session), ..Default::default() })
        .await
        .unwrap();
    a.wait_operation(acc.operation.unwrap().id, Duration::from_secs(60)).await.unwrap();
    let ini = std::fs::read_to_string(format!("{}/.proxy/pgbouncer.ini", dir.root())).unwrap();
    assert!(ini.contains(&format!("{} = host=", db.physical_name)) && ini.contains("pool_mode=session"), "{ini}");

    // An in-place restore of the whole instance: the same address serves it afterwards.
    let w2c = Conninfo::of(&db, &w2, tmp.path());
    wait_until("a base backup", Duration::from_secs(120), || async {
        h.admin.instance_recovery("px-pg").await.unwrap().earliest.is_some()
    })
    .await;
    let t: chrono::DateTime<chrono::Utc> = {
        // Committed first: the time is taken after the commit.
        psql(&admin.string(), "INSERT INTO t VALUES (2)").unwrap();
        psql(
            &admin.string(),
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        )
        .unwrap()
        .parse()
        .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    psql(&admin.string(), "INSERT INTO t VALUES (3)").unwrap();
    wait_until("the window reaches the time", Duration::from_secs(90), || async {
        h.admin.instance_recovery("px-pg").await.unwrap().latest.is_some_and(|l| l >= t)
    })
    .await;
    let req = RestoreInstance { time: Some(t), target: Some(RestoreTarget::InPlace), ..Default::default() };
    let inst = h.admin.restore_instance("px-pg", &req).await.unwrap();
    let op = h.admin.wait_operation(inst.last_operation_id.unwrap(), Duration::from_secs(300)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);
    let after = a.get_database(db.id).await.unwrap();
    assert_eq!((after.host.as_str(), after.port), ("127.0.0.1", 25991));
    let start = Instant::now();
    loop {
        let r = psql(&w2c.string(), "SELECT string_agg(i::text, ',' ORDER BY i) FROM t");
        if r.as_deref() == Ok("1,2") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the restored instance through the proxy: {r:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_registered_without_a_proxy_gets_one_and_its_databases_move_behind_it() {
    let dir = HostDir::new();
    let h = Harness::start_with(proxied()).await;
    h.admin.create_host(&local_req("px-late", &dir.root(), [25993, 25997])).await.unwrap();
    h.admin.create_instance(&managed("px-late-pg", "px-late")).await.unwrap();
    let (op, inst) = settle(&h.admin, "px-late-pg").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);
    let a = h.tenant("team-a").await;
    let db = h
        .ready_database(
            &a,
            CreateDatabase { name: "old".into(), instance: Some("px-late-pg".into()), ..Default::default() },
        )
        .await;
    assert_eq!(db.port, inst.port, "no proxy yet: the instance's own port");
    let tmp = tempdir();
    let (_, w, _) = creds(&a, &db).await;
    // As a password set before this version was: a verifier with a random salt (what the
    // server computes itself), which the proxy cannot pass SCRAM through with.
    let direct = Conninfo::of(&db, &w, tmp.path());
    let sql = format!("SET password_encryption = 'scram-sha-256'; ALTER ROLE CURRENT_USER PASSWORD '{}'", w.password);
    psql(&direct.string(), &sql).unwrap();

    // Bad ports change nothing.
    for (port, code) in [(25995, "inside_port_range"), (80, "out_of_range")] {
        let e = h.admin.update_host("px-late", &UpdateHost { proxy_port: Some(Some(port)) }).await.unwrap_err();
        assert_eq!((problem(&e).status, problem(&e).errors[0].code.as_str()), (422, code), "{e}");
    }
    let host = h.admin.update_host("px-late", &UpdateHost { proxy_port: Some(Some(25998)) }).await.unwrap();
    assert_eq!(host.proxy_port, Some(25998));
    assert!(host.proxy_ca_cert.is_some());
    // Its databases re-applied (a reconcile each), then reached through the proxy.
    let after = a.get_database(db.id).await.unwrap();
    let op = a.wait_operation(after.last_operation_id.unwrap(), std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&a, op.id).await);
    let after = a.get_database(db.id).await.unwrap();
    assert_eq!(after.port, 25998);
    let w = a.get_credential(db.id, Access::Write).await.unwrap();
    assert_eq!(psql(&Conninfo::of(&after, &w, tmp.path()).string(), "SELECT current_user").unwrap(), w.username);

    // Turned off: back to the instance's own port, the proxy gone.
    let host = h.admin.update_host("px-late", &UpdateHost { proxy_port: Some(None) }).await.unwrap();
    assert_eq!(host.proxy_port, None);
    assert_eq!(a.get_database(db.id).await.unwrap().port, inst.port);
    assert!(!listening(25998));
    let w = a.get_credential(db.id, Access::Write).await.unwrap();
    let back = a.get_database(db.id).await.unwrap();
    assert_eq!(psql(&Conninfo::of(&back, &w, tmp.path()).string(), "SELECT 1").unwrap(), "1");
}
