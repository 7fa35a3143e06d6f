//! The access model inside a database, checked with real logins (docs/architecture.md, "The access model").
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::*;
use dbaas_client::*;
use sqlx::Executor;

#[tokio::test(flavor = "multi_thread")]
async fn access_matrix() {
    let h = Harness::in_process().await;
    let team_a = h.tenant("team-a").await;
    let team_b = h.tenant("team-b").await;
    let a = h.ready_database(&team_a, db_req("orders")).await;
    let b = h.ready_database(&team_b, db_req("billing")).await;
    assert_eq!(a.physical_name, "team-a_orders");
    assert_eq!(a.roles.read, "team-a_orders_read");

    let cred = |access| {
        let c = team_a.clone();
        async move { c.get_credential(a.id, access).await.unwrap() }
    };
    let (admin, write, read) = (cred(Access::Admin).await, cred(Access::Write).await, cred(Access::Read).await);
    assert!(admin.uri.ends_with("sslmode=require"), "{}", admin.uri);

    // admin creates a new schema and a table in it, after provisioning.
    let mut ca = connect_as(&admin).await.expect("admin connects");
    ca.execute("CREATE SCHEMA sales; CREATE TABLE sales.orders (id serial PRIMARY KEY, total int)").await.unwrap();
    ca.execute("INSERT INTO sales.orders (total) VALUES (10)").await.unwrap();
    let owner: String = sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'orders'")
        .fetch_one(&mut ca)
        .await
        .unwrap();
    assert_eq!(owner, "team-a_orders_admin");

    // read: SELECT yes, INSERT no.
    let mut cr = connect_as(&read).await.expect("read connects");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sales.orders").fetch_one(&mut cr).await.unwrap();
    assert_eq!(n, 1);
    let err = cr.execute("INSERT INTO sales.orders (total) VALUES (1)").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "read must not insert: {err}");
    let err = cr.execute("CREATE TABLE public.nope (id int)").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "read must not create: {err}");

    // write: INSERT / UPDATE / DELETE (sequence usage included), but no DDL.
    let mut cw = connect_as(&write).await.expect("write connects");
    cw.execute("INSERT INTO sales.orders (total) VALUES (20)").await.unwrap();
    cw.execute("UPDATE sales.orders SET total = total + 1").await.unwrap();
    cw.execute("DELETE FROM sales.orders WHERE total = 11").await.unwrap();
    let err = cw.execute("CREATE TABLE sales.nope (id int)").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "write must not create: {err}");
    let err = cw.execute("DROP TABLE sales.orders").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "write must not drop: {err}");

    // Tenants get no cluster-level powers.
    let err = ca.execute("CREATE ROLE sneaky").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let err = ca.execute("CREATE DATABASE sneaky").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501");

    // A lease with admin access creates a table; read can still SELECT it once the lease
    // expired and its login was dropped.
    let lease = team_a.create_lease(a.id, &CreateLease { access: Access::Admin, ttl: "10s".into() }).await.unwrap();
    let op = team_a.wait_operation(lease.operation.unwrap().id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let lease = team_a.get_lease(a.id, lease.credential.id).await.unwrap();
    assert_eq!(lease.status, CredentialStatus::Active);
    assert!(lease.username.starts_with("team-a_orders_admin_"), "{}", lease.username);
    let mut cl = connect_as(&lease).await.expect("lease connects");
    cl.execute("CREATE TABLE sales.from_lease (id int); INSERT INTO sales.from_lease VALUES (42)").await.unwrap();
    drop(cl);
    let lease_role = lease.username.clone();
    wait_until("the lease to be revoked", Duration::from_secs(40), || {
        let c = team_a.clone();
        async move { c.get_lease(a.id, lease.id).await.unwrap().status == CredentialStatus::Revoked }
    })
    .await;
    assert!(h.target_roles_like(&lease_role).await.is_empty(), "lease role still exists");
    let v: i32 = sqlx::query_scalar("SELECT id FROM sales.from_lease").fetch_one(&mut cr).await.unwrap();
    assert_eq!(v, 42);
    assert!(connect_as(&lease).await.is_err(), "an expired lease must not log in");

    // A read lease inherits read's rights only.
    let rl = team_a.create_lease(a.id, &CreateLease { access: Access::Read, ttl: "1h".into() }).await.unwrap();
    team_a.wait_operation(rl.operation.unwrap().id, Duration::from_secs(30)).await.unwrap();
    let mut crl = connect_as(&team_a.get_lease(a.id, rl.credential.id).await.unwrap()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sales.orders").fetch_one(&mut crl).await.unwrap();
    assert_eq!(n, 1);
    assert!(crl.execute("DELETE FROM sales.orders").await.is_err());
    // Revoking terminates its open session.
    let rv = team_a.revoke_lease(a.id, rl.credential.id).await.unwrap();
    let op = team_a.wait_operation(rv.operation.unwrap().id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert!(sqlx::query("SELECT 1").execute(&mut crl).await.is_err(), "revoked lease session must be terminated");

    // Roles of A cannot connect to B, nor to the maintenance database.
    let b_admin = team_b.get_credential(b.id, Access::Admin).await.unwrap();
    for c in [&admin, &write, &read] {
        let uri = c.uri.replace("/team-a_orders?", "/team-b_billing?");
        let opts: sqlx::postgres::PgConnectOptions = uri.parse().unwrap();
        let err = sqlx::Connection::connect_with(&opts).await.map(|_: sqlx::PgConnection| ()).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{} reached team-b_billing: {err}", c.username);
        let opts: sqlx::postgres::PgConnectOptions = c.uri.replace("/team-a_orders?", "/postgres?").parse().unwrap();
        assert!(sqlx::Connection::connect_with(&opts).await.map(|_: sqlx::PgConnection| ()).is_err());
    }
    assert!(connect_as(&b_admin).await.is_ok());

    // A tenant token cannot see another tenant's database: 404, not 403.
    let err = team_b.get_database(a.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert_eq!(team_b.get_credential(a.id, Access::Admin).await.unwrap_err().status(), Some(404));
    assert_eq!(team_b.delete_database(a.id, false).await.unwrap_err().status(), Some(404));
    assert_eq!(team_b.find_database("team-a", "orders").await.unwrap_err().status(), Some(404));
    let listed = team_b.list_databases("").await.unwrap();
    assert_eq!(listed.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), vec!["billing"]);
    // …nor its operations.
    assert_eq!(team_b.get_operation(a.last_operation_id.unwrap()).await.unwrap_err().status(), Some(404));

    // Drift: an object created by hand by someone other than admin is reported.
    let mut su = h.target_db("team-a_orders").await;
    su.execute("CREATE TABLE public.by_superuser (id int)").await.unwrap();
    let d = team_a.get_database_fresh(a.id).await.unwrap();
    let drift = d.drift.unwrap();
    assert!(drift.differences.iter().any(|x| x.contains("public.by_superuser")), "{drift:?}");
}
