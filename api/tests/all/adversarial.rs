//! The hostile tenant: name collisions with other tenants and with foreign objects, and
//! tenant-defined code (operators, function overloads, aggregates, expression indexes,
//! triggers, `search_path` at database and role level) planted in its own database before
//! every code path that touches it runs. Each test asserts the tenant gained nothing
//! (`rolsuper`, attributes, memberships, other tenants' data) and other tenants are untouched.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::*;
use dbaas_client::*;
use sqlx::{Connection, Executor, PgConnection};

const WAIT: Duration = Duration::from_secs(120);

async fn done(c: &Client, op: Option<Operation>) -> Operation {
    c.wait_operation(op.expect("an operation").id, WAIT).await.unwrap()
}

async fn succeeded(c: &Client, op: Option<Operation>, what: &str) {
    let op = done(c, op).await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{what}: {op:?}");
}

async fn admin_session(c: &Client, db: &Database) -> PgConnection {
    connect_as(&c.get_credential(db.id, Access::Admin).await.unwrap()).await.unwrap()
}

/// A table the tenant wants, with bloat for pg_repack, owned by the database's admin role.
async fn bloated_table(c: &mut PgConnection, name: &str) {
    c.execute(
        format!(
            "CREATE TABLE public.{name} (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = false);
             INSERT INTO public.{name} SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;
             DELETE FROM public.{name} WHERE id % 10 <> 0;"
        )
        .as_str(),
    )
    .await
    .unwrap();
}

/// `pwn(at)` records who ran it and tries to make the tenant's admin role SUPERUSER: that
/// only succeeds when the service runs it with its own (superuser) rights.
async fn plant_pwn(c: &mut PgConnection, admin_role: &str) {
    c.execute(
        format!(
            r#"CREATE TABLE public.ran_as (who text, at text);
               GRANT INSERT ON public.ran_as TO PUBLIC;
               CREATE FUNCTION public.pwn(at text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
               BEGIN
                 BEGIN INSERT INTO public.ran_as VALUES (current_user::text, at); EXCEPTION WHEN others THEN NULL; END;
                 BEGIN EXECUTE 'ALTER ROLE "{admin_role}" SUPERUSER CREATEROLE CREATEDB'; EXCEPTION WHEN others THEN NULL; END;
                 BEGIN EXECUTE 'GRANT pg_execute_server_program TO "{admin_role}"'; EXCEPTION WHEN others THEN NULL; END;
                 RETURN true;
               END $f$;
               CREATE FUNCTION public.idx_fn(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
                 BEGIN PERFORM public.pwn('index expression'); RETURN i; END $f$;"#
        )
        .as_str(),
    )
    .await
    .unwrap();
}

/// Everything a tenant can plant to hijack a privileged session in its database.
async fn plant_everything(c: &mut PgConnection, physical: &str, admin_role: &str) {
    bloated_table(c, "victim").await;
    plant_pwn(c, admin_role).await;
    c.execute(
        format!(
            r#"CREATE INDEX victim_expr ON public.victim ((public.idx_fn(id)));
               CREATE FUNCTION public.trg() RETURNS trigger LANGUAGE plpgsql AS $f$
                 BEGIN PERFORM public.pwn('trigger'); RETURN NEW; END $f$;
               CREATE TRIGGER victim_trg BEFORE INSERT OR UPDATE OR DELETE ON public.victim
                 FOR EACH ROW EXECUTE FUNCTION public.trg();
               CREATE FUNCTION public.ev_ne(a name, b text) RETURNS boolean LANGUAGE plpgsql AS $f$
                 BEGIN PERFORM public.pwn('operator <>(name, text)'); RETURN a::text OPERATOR(pg_catalog.<>) b; END $f$;
               CREATE OPERATOR public.<> (LEFTARG = name, RIGHTARG = text, FUNCTION = public.ev_ne);
               CREATE FUNCTION public.ev_eq(a name, b text) RETURNS boolean LANGUAGE plpgsql AS $f$
                 BEGIN PERFORM public.pwn('operator =(name, text)'); RETURN a::text OPERATOR(pg_catalog.=) b; END $f$;
               CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = text, FUNCTION = public.ev_eq);
               CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
                 BEGIN PERFORM public.pwn('now()'); RETURN pg_catalog.now(); END $f$;
               CREATE FUNCTION public.pg_get_userbyid(o oid) RETURNS name LANGUAGE plpgsql AS $f$
                 BEGIN PERFORM public.pwn('pg_get_userbyid(oid)'); RETURN pg_catalog.pg_get_userbyid(o); END $f$;
               CREATE FUNCTION public.pg_try_advisory_lock(k text, i integer) RETURNS boolean LANGUAGE plpgsql AS $f$
                 BEGIN PERFORM public.pwn('pg_try_advisory_lock(text, integer)');
                 RETURN pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext(k), i); END $f$;
               CREATE FUNCTION public.cnt_step(s int8) RETURNS int8 LANGUAGE plpgsql AS $f$
                 BEGIN PERFORM public.pwn('count(*)'); RETURN s OPERATOR(pg_catalog.+) 1; END $f$;
               CREATE AGGREGATE public.count(*) (SFUNC = public.cnt_step, STYPE = int8, INITCOND = '0');
               ALTER DATABASE "{physical}" SET search_path = public, pg_catalog;
               ALTER ROLE CURRENT_USER SET search_path = public, pg_catalog;"#
        )
        .as_str(),
    )
    .await
    .unwrap();
}

/// No role of any tenant has gained an attribute or a membership outside its own database's
/// roles, and all tenant code that ran, ran as a tenant role of `physical`.
async fn assert_gained_nothing(h: &Harness, tenant_db: Option<(&Client, &Database)>) {
    let mut su = h.target_db("postgres").await;
    let attrs: Vec<(String, bool, bool, bool, bool, bool)> = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls \
         FROM pg_catalog.pg_roles WHERE rolname LIKE 'team%'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(!attrs.is_empty());
    for (role, su_, cr, cd, rep, rls) in &attrs {
        assert!(!(su_ | cr | cd | rep | rls), "{role} gained privileges: {attrs:?}");
    }
    // Memberships: a tenant role may only be a member of a role of its own database.
    let members: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.rolname::text, g.rolname::text FROM pg_catalog.pg_auth_members am \
         JOIN pg_catalog.pg_roles m ON m.oid = am.member JOIN pg_catalog.pg_roles g ON g.oid = am.roleid \
         WHERE m.rolname LIKE 'team%'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    for (member, group) in &members {
        let db_of = |r: &str| r.split('_').take(2).collect::<Vec<_>>().join("_");
        assert_eq!(db_of(member), db_of(group), "{member} became a member of {group}");
    }
    if let Some((client, db)) = tenant_db {
        let mut c = admin_session(client, db).await;
        let ran: Vec<(String, String)> =
            sqlx::query_as("SELECT who, at FROM public.ran_as").fetch_all(&mut c).await.unwrap();
        for (who, at) in &ran {
            assert!(who.starts_with(&format!("{}_", db.physical_name)), "tenant code ({at}) ran as {who}: {ran:?}");
        }
    }
}

async fn maintenance(c: &Client, db: &Database, kind: MaintenanceKind) -> Operation {
    let req = CreateMaintenance { kind, tables: vec![], options: Default::default() };
    let acc = c.start_maintenance(db.id, &req).await.unwrap();
    c.wait_operation(acc.operation.id, WAIT).await.unwrap()
}

/// Confirmed defect 2: tenant code planted in the tenant's database, then every code path
/// that touches it. Before the fix, the drift check of one GET ran the tenant's `<>(name,
/// text)` as the service's superuser.
#[tokio::test]
async fn tenant_code_never_runs_with_the_service_rights() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let b = h.tenant("team-b").await;
    let other = h.ready_database(&b, db_req("billing")).await;
    let mut bc = admin_session(&b, &other).await;
    bc.execute("CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('b-only')").await.unwrap();

    let db = h.ready_database(&a, db_req("orders")).await;
    let mut ac = admin_session(&a, &db).await;
    plant_everything(&mut ac, &db.physical_name, &db.roles.admin).await;
    ac.close().await.unwrap();

    // GET with the drift check (the catalog is read while the tenant's objects are there).
    let got = a.get_database_fresh(db.id).await.unwrap();
    let drift = got.drift.expect("drift");
    assert!(drift.checked, "{drift:?}");
    assert_gained_nothing(&h, Some((&a, &db))).await;
    // The background reconciler's pass reads the same catalogs and the database's inside
    // (two databases here: both inside every pass), with the tenant's objects in place.
    let since = chrono::Utc::now();
    let stored = Harness::reconciled_drift(&a, db.id, since).await;
    assert!(stored.checked, "{stored:?}");
    let mut state = h.state_db().await;
    let inside_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT deep_checked_at FROM drift_checks WHERE database_id = $1")
            .bind(db.id)
            .fetch_one(&mut state)
            .await
            .unwrap();
    assert!(inside_at.is_some_and(|t| t > since), "the pass did not look inside: {inside_at:?}");
    assert_gained_nothing(&h, Some((&a, &db))).await;

    // Re-provision, PATCH (extensions), rotations, a lease made and revoked.
    succeeded(&a, a.reconcile_database(db.id).await.unwrap().operation, "reconcile").await;
    let patch = UpdateDatabase { extensions: Some(vec!["citext".into()]), ..Default::default() };
    succeeded(&a, a.update_database(db.id, &patch).await.unwrap().operation, "patch extensions").await;
    // Where a database owner's extension goes: public (never pg_catalog).
    let mut c = admin_session(&a, &db).await;
    let schema: String = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
         WHERE e.extname OPERATOR(pg_catalog.=) 'citext'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(schema, "public");
    for access in [Access::Admin, Access::Write] {
        succeeded(&a, Some(a.rotate_credential(db.id, access).await.unwrap().operation), "rotate").await;
    }
    let lease = a.create_lease(db.id, &CreateLease { access: Access::Admin, ttl: "10m".into() }).await.unwrap();
    succeeded(&a, lease.operation, "lease").await;
    succeeded(&a, a.revoke_lease(db.id, lease.credential.id).await.unwrap().operation, "revoke lease").await;
    assert_gained_nothing(&h, Some((&a, &db))).await;

    // Every maintenance kind. VACUUM/ANALYZE/REINDEX run as the tenant's admin role (its own
    // index expression runs, as itself); pg_repack is refused: its superuser session would
    // resolve names through the tenant's `public`.
    for kind in [MaintenanceKind::Vacuum, MaintenanceKind::Analyze, MaintenanceKind::Reindex] {
        let op = maintenance(&a, &db, kind).await;
        assert_eq!(op.status, OperationStatus::Succeeded, "{kind:?}: {op:?}");
    }
    let op = maintenance(&a, &db, MaintenanceKind::Repack).await;
    assert_eq!(op.status, OperationStatus::Failed);
    let err = op.error.unwrap();
    assert_eq!(err.code, "repack_refused", "{err:?}");
    assert!(err.message.contains("public.<>(name,text)") && err.message.contains("public.now()"), "{}", err.message);
    assert_gained_nothing(&h, Some((&a, &db))).await;

    // Protected, deleted (retained), declared again (re-adopted), then really deleted.
    let protect = UpdateDatabase { mode: Some(DatabaseMode::Protected), ..Default::default() };
    a.update_database(db.id, &protect).await.unwrap();
    assert_eq!(a.delete_database(db.id, false).await.unwrap().database.status, DatabaseStatus::Retained);
    let again = a.create_database(&CreateDatabase { extensions: vec!["citext".into()], ..db_req("orders") }).await;
    let again = again.unwrap();
    assert_eq!(again.database.id, db.id, "re-adopted, not a new record");
    succeeded(&a, again.operation, "re-adopt").await;
    assert_gained_nothing(&h, Some((&a, &db))).await;
    let lower = UpdateDatabase { mode: Some(DatabaseMode::Standard), ..Default::default() };
    a.update_database(db.id, &lower).await.unwrap();
    succeeded(&a, a.delete_database(db.id, false).await.unwrap().operation, "delete").await;
    assert!(!h.target_has_db(&db.physical_name).await);
    assert_gained_nothing(&h, None).await;

    // The other tenant is untouched and still unreachable from team-a's logins.
    let v: String = sqlx::query_scalar("SELECT v FROM secrets").fetch_one(&mut bc).await.unwrap();
    assert_eq!(v, "b-only");
}

/// The service's own sessions inside a tenant database (pg_repack's catalog reads and
/// prechecks run there as the service) ignore the `search_path` the tenant sets on its
/// database: operators the tenant defines for `integer` and `oid` in a schema put first on
/// that path are never resolved by them.
#[tokio::test]
async fn a_search_path_set_on_the_database_reaches_no_service_session() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("shop")).await;
    let mut ac = admin_session(&a, &db).await;
    bloated_table(&mut ac, "plain").await;
    plant_pwn(&mut ac, &db.roles.admin).await;
    ac.execute(
        format!(
            r#"CREATE SCHEMA evil;
               CREATE FUNCTION evil.eq_int(a integer, b integer) RETURNS boolean LANGUAGE plpgsql AS $f$
                 BEGIN PERFORM public.pwn('operator =(integer, integer)'); RETURN a OPERATOR(pg_catalog.=) b; END $f$;
               CREATE OPERATOR evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.eq_int);
               CREATE FUNCTION evil.eq_oid(a oid, b oid) RETURNS boolean LANGUAGE plpgsql AS $f$
                 BEGIN PERFORM public.pwn('operator =(oid, oid)'); RETURN a OPERATOR(pg_catalog.=) b; END $f$;
               CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.eq_oid);
               GRANT USAGE ON SCHEMA evil TO PUBLIC;
               ALTER DATABASE "{}" SET search_path = evil, public, pg_catalog;"#,
            db.physical_name
        )
        .as_str(),
    )
    .await
    .unwrap();
    let op = maintenance(&a, &db, MaintenanceKind::Repack).await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let logs: Vec<String> = a.operation_logs(op.id).await.unwrap().into_iter().map(|l| l.message).collect();
    assert!(logs.iter().any(|l| l.starts_with("public.plain: repacked")), "{logs:#?}");
    assert_gained_nothing(&h, Some((&a, &db))).await;
}

/// pg_repack in a database without name-shadowing objects: a table whose index calls a
/// tenant function is skipped with the reason (pg_repack would rebuild that index as the
/// service), a plain table is repacked; a tenant-made `repack` schema refuses the run.
#[tokio::test]
async fn repack_skips_tables_reaching_tenant_code() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("shop")).await;
    let mut ac = admin_session(&a, &db).await;
    bloated_table(&mut ac, "plain").await;
    bloated_table(&mut ac, "victim").await;
    plant_pwn(&mut ac, &db.roles.admin).await;
    ac.execute("CREATE INDEX victim_expr ON public.victim ((public.idx_fn(id)))").await.unwrap();

    let op = maintenance(&a, &db, MaintenanceKind::Repack).await;
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let logs: Vec<String> = a.operation_logs(op.id).await.unwrap().into_iter().map(|l| l.message).collect();
    assert!(
        logs.iter().any(|l| l.starts_with("public.victim: skipped: depends on tenant-defined function public.idx_fn")),
        "{logs:#?}"
    );
    assert!(logs.iter().any(|l| l.starts_with("public.plain: repacked")), "{logs:#?}");
    assert_gained_nothing(&h, Some((&a, &db))).await;

    // A `repack` schema of the tenant's own: pg_repack would call its functions.
    let other = h.ready_database(&a, db_req("shop2")).await;
    let mut oc = admin_session(&a, &other).await;
    bloated_table(&mut oc, "plain").await;
    oc.execute("CREATE SCHEMA repack").await.unwrap();
    let op = maintenance(&a, &other, MaintenanceKind::Repack).await;
    assert_eq!(op.status, OperationStatus::Failed);
    let err = op.error.unwrap();
    assert_eq!(err.code, "repack_refused");
    assert!(err.message.contains("schema named repack"), "{}", err.message);
}

/// Confirmed defect 1: `team` + `a-orders` and `team-a` + `orders` were the same physical
/// database; the second provisioning re-passworded and re-owned the first tenant's objects.
#[tokio::test]
async fn tenants_with_colliding_names_stay_apart() {
    let h = Harness::in_process().await;
    let team_a = h.tenant("team-a").await;
    let team = h.tenant("team").await;
    let victim = h.ready_database(&team_a, db_req("orders")).await;
    let mut vc = admin_session(&team_a, &victim).await;
    vc.execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('team-a data')").await.unwrap();
    vc.close().await.unwrap();

    let attacker = h.ready_database(&team, db_req("a-orders")).await;
    assert_ne!(attacker.physical_name, victim.physical_name);
    for access in Access::ALL {
        let (x, y) = (attacker.roles.clone(), victim.roles.clone());
        let pick = |r: &RoleNames| match access {
            Access::Read => r.read.clone(),
            Access::Write => r.write.clone(),
            Access::Admin => r.admin.clone(),
        };
        assert_ne!(pick(&x), pick(&y));
    }

    // team-a's logins still work and see their data; team's logins cannot reach it.
    let mut vc = admin_session(&team_a, &victim).await;
    let v: String = sqlx::query_scalar("SELECT v FROM t").fetch_one(&mut vc).await.unwrap();
    assert_eq!(v, "team-a data");
    let owner: String = sqlx::query_scalar(
        "SELECT pg_catalog.pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(&mut vc)
    .await
    .unwrap();
    assert_eq!(owner, victim.roles.admin);
    for access in Access::ALL {
        let cred = team.get_credential(attacker.id, access).await.unwrap();
        let uri = cred.uri.replace(&format!("/{}?", attacker.physical_name), &format!("/{}?", victim.physical_name));
        let opts: sqlx::postgres::PgConnectOptions = uri.parse().unwrap();
        let err = PgConnection::connect_with(&opts.ssl_mode(sqlx::postgres::PgSslMode::Require)).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{} reached {}: {err}", cred.username, victim.physical_name);
    }

    // Deleting team's database leaves team-a's alone.
    succeeded(&team, team.delete_database(attacker.id, false).await.unwrap().operation, "delete").await;
    assert!(h.target_has_db(&victim.physical_name).await);
    let v: String = sqlx::query_scalar("SELECT v FROM t").fetch_one(&mut vc).await.unwrap();
    assert_eq!(v, "team-a data");
}

/// A database or role made by hand with the name the service would use is never adopted:
/// 409 at create, nothing touched; a foreign database appearing later fails the operation
/// with `name_conflict` and survives the record's deletion.
#[tokio::test]
async fn foreign_objects_with_our_names_are_never_touched() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let mut su = h.target_db("postgres").await;
    su.execute("CREATE ROLE \"team-a_legacy_admin\" LOGIN PASSWORD 'hand-made'").await.unwrap();
    su.execute("CREATE DATABASE \"team-a_legacy\"").await.unwrap();
    let before: (String, String) = sqlx::query_as(
        "SELECT (SELECT rolpassword FROM pg_authid WHERE rolname = 'team-a_legacy_admin'), \
                (SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = 'team-a_legacy')",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();

    let e = a.create_database(&db_req("legacy")).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    let p = e.problem().unwrap();
    assert_eq!(p.code, "name_conflict");
    assert!(
        p.detail.contains("role team-a_legacy_admin") && p.detail.contains("database team-a_legacy"),
        "{}",
        p.detail
    );
    assert_eq!(h.count("SELECT count(*) FROM databases").await, 0, "no record is made");
    let after: (String, String) = sqlx::query_as(
        "SELECT (SELECT rolpassword FROM pg_authid WHERE rolname = 'team-a_legacy_admin'), \
                (SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = 'team-a_legacy')",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(before, after, "the foreign objects were changed");

    // A database of ours replaced by hand by a foreign one: reconcile refuses to adopt it.
    let db = h.ready_database(&a, db_req("app")).await;
    replace_by_hand(&mut su, &db.physical_name).await;
    let op = done(&a, a.reconcile_database(db.id).await.unwrap().operation).await;
    assert_eq!(op.status, OperationStatus::Failed);
    let err = op.error.unwrap();
    assert_eq!(err.code, "name_conflict", "{err:?}");
    assert!(err.message.contains(&format!("database {}", db.physical_name)), "{}", err.message);
    let owner: String = sqlx::query_scalar("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1")
        .bind(&db.physical_name)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(owner, "postgres", "the foreign database was re-owned");
    let drift = a.get_database_fresh(db.id).await.unwrap().drift.unwrap();
    assert!(drift.differences.iter().any(|d| d.contains("is not the service's")), "{drift:?}");

    // Deleting the record drops our roles but leaves the foreign database.
    let del = done(&a, a.delete_database(db.id, false).await.unwrap().operation).await;
    assert_eq!(del.status, OperationStatus::Succeeded, "{del:?}");
    assert!(h.target_has_db(&db.physical_name).await, "a foreign database was dropped");
    assert!(h.target_roles_like(&format!("{}\\_%", db.physical_name)).await.is_empty());

    // A retained database swapped for a foreign one is not re-adopted.
    let keep = h.ready_database(&a, CreateDatabase { mode: Some(DatabaseMode::Protected), ..db_req("keep") }).await;
    a.delete_database(keep.id, false).await.unwrap();
    replace_by_hand(&mut su, &keep.physical_name).await;
    let e = a.create_database(&db_req("keep")).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    assert_eq!(e.problem().unwrap().code, "name_conflict");
    assert_eq!(a.get_database(keep.id).await.unwrap().status, DatabaseStatus::Retained);
}

/// Drops a database and creates one with the same name by hand (no marker, owned by postgres).
async fn replace_by_hand(su: &mut PgConnection, name: &str) {
    su.execute(format!("DROP DATABASE \"{name}\" WITH (FORCE)").as_str()).await.unwrap();
    su.execute(format!("CREATE DATABASE \"{name}\"").as_str()).await.unwrap();
}

/// In prod a tenant cannot lower deletion protection; an admin can, and it is audited.
#[tokio::test]
async fn prod_protection_is_lowered_only_by_an_admin() {
    let h = Harness::in_process().await;
    let prod = CreateInstance {
        environment: Environment::Prod,
        ca_cert: h.target_pg.ca_cert.clone(),
        ..instance_req(&h.target_pg, "prod")
    };
    h.admin.create_instance(&prod).await.unwrap();
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, CreateDatabase { instance: Some("prod".into()), ..db_req("ledger") }).await;
    assert_eq!(db.mode, DatabaseMode::Protected);
    let lower = UpdateDatabase { mode: Some(DatabaseMode::Standard), ..Default::default() };
    let e = a.update_database(db.id, &lower).await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    assert_eq!(a.get_database(db.id).await.unwrap().mode, DatabaseMode::Protected);
    h.admin.update_database(db.id, &lower).await.unwrap();
    assert_eq!(a.get_database(db.id).await.unwrap().mode, DatabaseMode::Standard);
    assert_eq!(h.count("SELECT count(*) FROM audit_log WHERE action = 'database.mode.lowered'").await, 1);
}

/// A network attacker between clients and the instance: credentials carry the instance's CA,
/// and a client using it with `verify-full` connects.
#[tokio::test]
async fn credentials_carry_the_ca_for_verify_full() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let db = h.ready_database(&a, db_req("orders")).await;
    let cred = a.get_credential(db.id, Access::Read).await.unwrap();
    let ca = cred.ca_cert.clone().expect("the instance's CA");
    assert_eq!(Some(&ca), h.target_pg.ca_cert.as_ref());
    let opts: sqlx::postgres::PgConnectOptions = cred.uri.parse().unwrap();
    let opts = opts.ssl_mode(sqlx::postgres::PgSslMode::VerifyFull).ssl_root_cert_from_pem(ca.into_bytes());
    let mut c = PgConnection::connect_with(&opts).await.unwrap();
    let ssl: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&mut c).await.unwrap();
    assert!(ssl);
}
