//! The hostile tenant against the routing proxy (part of the adversarial suite): another
//! tenant's database through the shared port, the proxy's console, its files on the host
//! read through the tenant's own SQL, a login the service does not know, and a tenant that
//! changes its own password behind the service's back. Each probe is refused and nothing of
//! the other tenant changes.
#![allow(clippy::unwrap_used)]

use crate::common;
use crate::proxy::{creds, proxied, psql, Conninfo};

use common::hosts::*;
use common::*;
use dbaas_client::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_gets_nothing_from_the_proxy_it_shares() {
    let dir = HostDir::new();
    let h = Harness::start_with(proxied()).await;
    let req = CreateHost { proxy_port: Some(25992), ..local_req("px-adv", &dir.root(), [25980, 25989]) };
    h.admin.create_host(&req).await.unwrap();
    h.admin.create_instance(&managed("px-shared", "px-adv")).await.unwrap();
    let (op, _) = settle(&h.admin, "px-shared").await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{}", log_text(&h.admin, op.id).await);
    let a = h.tenant("mallory").await;
    let b = h.tenant("victim").await;
    let on =
        |name: &str| CreateDatabase { name: name.into(), instance: Some("px-shared".into()), ..Default::default() };
    let evil = h.ready_database(&a, on("evil")).await;
    let safe = h.ready_database(&b, on("safe")).await;
    let tmp = tempdir();
    let (_, _, ea) = creds(&a, &evil).await;
    let (_, _, sa) = creds(&b, &safe).await;
    let mallory = Conninfo::of(&evil, &ea, tmp.path());
    let victim = Conninfo::of(&safe, &sa, tmp.path());
    psql(&victim.string(), "CREATE TABLE secrets (s text); INSERT INTO secrets VALUES ('victim data')").unwrap();

    // The victim's database through the shared port, with the attacker's valid login: the
    // proxy admits each database's own logins only.
    let cross = Conninfo { dbname: safe.physical_name.clone(), ..Conninfo::of(&evil, &ea, tmp.path()) };
    let e = psql(&cross.string(), "SELECT * FROM secrets").unwrap_err();
    assert!(!e.contains("victim data"), "{e}");
    // Its console, and the proxy's own user, over TCP.
    for (dbname, user) in [("pgbouncer", ea.username.as_str()), (evil.physical_name.as_str(), "postgres")] {
        let probe = Conninfo { dbname: dbname.into(), user: user.into(), ..Conninfo::of(&evil, &ea, tmp.path()) };
        assert!(psql(&probe.string(), "SHOW USERS").is_err(), "{dbname} as {user} was let in");
    }
    // A login the service never made (the victim's role name with a guessed password).
    let guess = Conninfo { password: "guess".into(), ..Conninfo::of(&safe, &sa, tmp.path()) };
    assert!(psql(&guess.string(), "SELECT 1").is_err());

    // The proxy's files through the tenant's own SQL: the server refuses to read them.
    let users = format!("{}/.proxy/userlist.txt", dir.root());
    for sql in [
        format!("SELECT pg_read_file('{users}')"),
        format!("SELECT pg_ls_dir('{}/.proxy')", dir.root()),
        format!("CREATE TEMP TABLE f (l text); COPY f FROM '{users}'"),
        format!("SELECT lo_import('{users}')"),
    ] {
        let e = psql(&mallory.string(), &sql).unwrap_err();
        assert!(e.contains("permission denied") || e.contains("must be superuser"), "{sql}: {e}");
    }

    // The attacker changes its own password behind the service's back: its own login through
    // the proxy stops working (the proxy keeps the service's verifier), nothing else moves.
    psql(&mallory.string(), &format!("ALTER ROLE {} PASSWORD 'mine'", ea.username)).unwrap();
    let mine = Conninfo { password: "mine".into(), ..Conninfo::of(&evil, &ea, tmp.path()) };
    assert!(psql(&mine.string(), "SELECT 1").is_err(), "a password the service did not set passed the proxy");
    assert_eq!(psql(&victim.string(), "SELECT s FROM secrets").unwrap(), "victim data");
    let before = std::fs::read_to_string(&users).unwrap();
    assert!(before.contains(&sa.username) && before.contains(&ea.username));
}
