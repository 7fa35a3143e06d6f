//! Acceptance tests: the real terraform binary, the provider from a filesystem mirror, the
//! real API and real PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use sqlx::Executor;

const DB: &str = r#"
resource "dbaas_tenant" "team" {
  name = "team-a"
}

resource "dbaas_database" "orders" {
  tenant     = dbaas_tenant.team.name
  name       = "NAME"
  instance   = "main"
  EXTRA
}

output "id" {
  value = dbaas_database.orders.id
}
output "uris" {
  value     = { read = dbaas_database.orders.read_uri, write = dbaas_database.orders.write_uri, admin = dbaas_database.orders.admin_uri }
  sensitive = true
}
"#;

fn db_config(name: &str, extra: &str) -> String {
    DB.replace("NAME", name).replace("EXTRA", extra)
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_plan_update_replace_import_drift_destroy() {
    let env = Env::start().await;
    let wd = env.workdir("lifecycle", &db_config("orders", ""));

    // Apply creates; every role logs in with its password; a second plan is empty.
    env.apply(&wd);
    let out = env.outputs(&wd);
    for access in ["read", "write", "admin"] {
        let uri = out["uris"]["value"][access].as_str().unwrap();
        let mut c = connect(uri).await.unwrap_or_else(|e| panic!("{access}: {e}"));
        let who: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut c).await.unwrap();
        assert_eq!(who, format!("team-a_orders_{access}"));
    }
    let mut admin = connect(out["uris"]["value"]["admin"].as_str().unwrap()).await.unwrap();
    admin.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)").await.unwrap();
    let (code, plan) = env.plan(&wd);
    assert_eq!(code, 0, "second plan should be empty:\n{plan}");

    // In-place update: connection limit, extensions and the proxy's pool mode.
    env.write(
        &wd,
        &db_config("orders", "connection_limit = 12\n  extensions = [\"citext\"]\n  pool_mode = \"transaction\""),
    );
    let (code, plan) = env.plan(&wd);
    assert_eq!(code, 2);
    assert!(plan.contains("will be updated in-place") && !plan.contains("must be replaced"), "{plan}");
    env.apply(&wd);
    let dbs = env.admin.list_databases("tenant=team-a").await.unwrap();
    assert_eq!(dbs.iter().find(|d| d.name == "orders").unwrap().pool_mode, dbaas_client::PoolMode::Transaction);
    // Left out of the configuration again: kept as it is (optional and computed).
    env.write(&wd, &db_config("orders", "connection_limit = 12\n  extensions = [\"citext\"]"));
    let mut su = env.target_db("postgres").await;
    let limit: i32 = sqlx::query_scalar("SELECT datconnlimit FROM pg_database WHERE datname = 'team-a_orders'")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(limit, 12);
    assert_eq!(env.plan(&wd).0, 0);

    // Rotation through a trigger: the write password changes, the others do not.
    env.write(
        &wd,
        &db_config(
            "orders",
            "connection_limit = 12\n  extensions = [\"citext\"]\n  rotation_triggers = { write = \"1\" }",
        ),
    );
    env.apply(&wd);
    env.write(
        &wd,
        &db_config(
            "orders",
            "connection_limit = 12\n  extensions = [\"citext\"]\n  rotation_triggers = { write = \"2\" }",
        ),
    );
    let before = env.outputs(&wd);
    env.apply(&wd);
    let after = env.outputs(&wd);
    assert_ne!(before["uris"]["value"]["write"], after["uris"]["value"]["write"]);
    assert_eq!(before["uris"]["value"]["read"], after["uris"]["value"]["read"]);
    connect(after["uris"]["value"]["write"].as_str().unwrap()).await.unwrap();
    assert!(connect(before["uris"]["value"]["write"].as_str().unwrap()).await.is_err());
    assert_eq!(env.plan(&wd).0, 0);

    // Import: by tenant/name and by id, each followed by an empty plan.
    let id = env.outputs(&wd)["id"]["value"].as_str().unwrap().to_string();
    env.write(&wd, &db_config("orders", "connection_limit = 12\n  extensions = [\"citext\"]"));
    for import_id in ["team-a/orders", id.as_str()] {
        assert!(env.tf(&wd, &["state", "rm", "dbaas_database.orders"]).status.success());
        let out = env.tf(&wd, &["import", "-input=false", "dbaas_database.orders", import_id]);
        assert!(out.status.success(), "import {import_id}: {}", text(&out));
        let (code, plan) = env.plan(&wd);
        assert_eq!(code, 0, "plan after import of {import_id} should be empty:\n{plan}");
    }

    // Drift: dropped by hand. A plan asking for live checks (`fresh_drift`, here from the
    // environment) sees it at once...
    su.execute("DROP DATABASE \"team-a_orders\" WITH (FORCE)").await.unwrap();
    let dropped_at = chrono::Utc::now();
    let fresh = env.tf_env(
        &wd,
        &["plan", "-input=false", "-detailed-exitcode"],
        &[("DBAAS_ENDPOINT", &env.endpoint), ("DBAAS_TOKEN", &env.token), ("DBAAS_FRESH_DRIFT", "true")],
    );
    assert_eq!(fresh.status.code(), Some(2), "{}", text(&fresh));
    assert!(text(&fresh).contains("dropped outside Terraform"), "{}", text(&fresh));
    // ...and a plain plan once the background reconciler has compared the instance again
    // (every second here, every minute by default): the next plan creates it, the apply
    // brings it back.
    let id = env.admin.list_databases("tenant=team-a").await.unwrap().iter().find(|d| d.name == "orders").unwrap().id;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.admin.get_database(id).await.unwrap().drift.is_none_or(|d| d.checked_at <= Some(dropped_at)) {
        assert!(std::time::Instant::now() < deadline, "the reconciler did not run");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (code, plan) = env.plan(&wd);
    assert_eq!(code, 2);
    assert!(plan.contains("dbaas_database.orders will be created"), "{plan}");
    assert!(plan.contains("dropped outside Terraform"), "{plan}");
    env.apply(&wd);
    assert!(env.target_has_db("team-a_orders").await);
    assert_eq!(env.plan(&wd).0, 0);

    // Replacement: a new name replaces the database.
    env.write(&wd, &db_config("orders2", "connection_limit = 12\n  extensions = [\"citext\"]"));
    let (code, plan) = env.plan(&wd);
    assert_eq!(code, 2);
    assert!(plan.contains("must be replaced") && plan.contains("forces replacement"), "{plan}");
    env.apply(&wd);
    assert!(env.target_has_db("team-a_orders2").await);
    assert!(!env.target_has_db("team-a_orders").await);

    // Destroy removes everything.
    let out = env.tf(&wd, &["destroy", "-auto-approve", "-input=false"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!env.target_has_db("team-a_orders2").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_destroy_retains_and_apply_readopts() {
    let env = Env::start().await;
    let wd = env.workdir("protected", &db_config("ledger", "mode = \"protected\""));
    env.apply(&wd);
    let uri = env.outputs(&wd)["uris"]["value"]["admin"].as_str().unwrap().to_string();
    let mut c = connect(&uri).await.unwrap();
    c.execute("CREATE TABLE entries (amount int); INSERT INTO entries VALUES (100), (250)").await.unwrap();
    drop(c);

    let out = env.tf(&wd, &["destroy", "-auto-approve", "-input=false", "-target=dbaas_database.orders"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("retained, not dropped"), "{}", text(&out));
    assert!(env.target_has_db("team-a_ledger").await);

    // Declared again: re-adopted with its data and the same credentials.
    let out = env.apply(&wd);
    assert!(out.contains("1 added"), "{out}");
    let mut c = connect(&uri).await.unwrap();
    let sum: i64 = sqlx::query_scalar("SELECT sum(amount) FROM entries").fetch_one(&mut c).await.unwrap();
    assert_eq!(sum, 350);
    assert_eq!(env.plan(&wd).0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ephemeral_lease_is_used_and_never_stored() {
    let env = Env::start().await;
    let body = db_config("app", "")
        + r#"
ephemeral "dbaas_lease" "migrate" {
  database_id = dbaas_database.orders.id
  access      = "admin"
  ttl         = "10m"
}

resource "terraform_data" "migration" {
  triggers_replace = [dbaas_database.orders.id]
  provisioner "local-exec" {
    command     = "psql \"$URI\" -Atc 'CREATE TABLE from_lease (id int); SELECT session_user' > lease-user.txt"
    environment = { URI = ephemeral.dbaas_lease.migrate.uri }
  }
}

ephemeral "dbaas_credentials" "writer" {
  database_id = dbaas_database.orders.id
  access      = "write"
}

resource "terraform_data" "seed" {
  triggers_replace = [dbaas_database.orders.id]
  depends_on       = [terraform_data.migration]
  provisioner "local-exec" {
    command     = "psql \"$URI\" -Atc 'SELECT current_user' > writer.txt"
    environment = { URI = ephemeral.dbaas_credentials.writer.uri }
  }
}
"#;
    let wd = env.workdir("lease", &body);
    env.apply(&wd);
    let printed = std::fs::read_to_string(wd.join("lease-user.txt")).unwrap();
    let user = printed.lines().last().unwrap_or_default().to_string();
    assert!(user.trim().starts_with("team-a_app_admin_"), "{user:?}");
    // The table it created belongs to the admin role, so it outlives the lease.
    let mut c = env.target_db("team-a_app").await;
    let owner: String = sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'from_lease'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(owner, "team-a_app_admin");
    // Neither the lease's login nor its password is in the state; no lease resource either
    // (only the dependency address of the consumer names it).
    let state = std::fs::read_to_string(wd.join("terraform.tfstate")).unwrap();
    let db_id = env.outputs(&wd)["id"]["value"].as_str().unwrap().parse().unwrap();
    let lease = env
        .admin
        .list_credentials(db_id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.username == user)
        .expect("lease credential");
    assert!(!state.contains(&lease.username), "lease login found in state");
    assert!(!state.contains(&lease.password), "lease password found in state");
    let parsed: serde_json::Value = serde_json::from_str(&state).unwrap();
    let types: Vec<&str> =
        parsed["resources"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert!(!types.contains(&"dbaas_lease"), "{types:?}");
    // The static login read at use: the write role, and no credentials resource in state.
    let writer = std::fs::read_to_string(wd.join("writer.txt")).unwrap();
    assert_eq!(writer.trim(), "team-a_app_write");
    assert!(!types.contains(&"dbaas_credentials"), "{types:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_fails_at_plan_with_paths() {
    let env = Env::start().await;
    let wd = env.workdir(
        "bad",
        r#"
resource "dbaas_database" "a" {
  tenant   = "team-a"
  name     = "Bad Name"
  instance = "main"
}
resource "dbaas_database" "b" {
  tenant    = "team-a"
  name      = "b"
  instance  = "main"
  placement = { environment = "sandbox" }
}
resource "dbaas_database" "d" {
  tenant = "team-a"
  name   = "d"
  instance = "main"
  timeouts {
    create = "soon"
  }
}
ephemeral "dbaas_lease" "l" {
  database_id = "x"
  access      = "root"
  ttl         = "5s"
}
"#,
    );
    let (code, out) = env.plan(&wd);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "Error: Invalid database name",
        "Error: Conflicting instance and placement",
        "Error: Invalid timeout",
        "Error: Invalid access level",
        "Error: Invalid ttl",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // Diagnostics point at the offending attribute's line.
    assert!(out.contains("name     = \"Bad Name\""), "{out}");
    assert!(out.contains("ttl         = \"5s\""), "{out}");
    assert!(!out.contains("panic") && !out.contains("goroutine"), "{out}");

    // An unknown instance is named at plan time (a warning: the same configuration may create
    // it), and the apply fails on the attribute before anything is made.
    let unknown = env.workdir("unknown", "resource \"dbaas_database\" \"c\" {\n  tenant   = \"team-a\"\n  name     = \"c\"\n  instance = \"nowhere\"\n}\n");
    let (code, out) = env.plan(&unknown);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Warning: Unknown instance") && out.contains("instance = \"nowhere\""), "{out}");
    let out = text(&env.tf(&unknown, &["apply", "-auto-approve", "-input=false"]));
    assert!(
        out.contains("Error:")
            && out.contains("no instance named \"nowhere\"")
            && out.contains("instance = \"nowhere\""),
        "{out}"
    );

    // Provider configuration: missing endpoint, unreachable API, bad token.
    let ok = env.workdir("cfg", "resource \"dbaas_tenant\" \"t\" {\n  name = \"team-z\"\n}\n");
    let out = env.tf_env(&ok, &["plan", "-input=false"], &[("DBAAS_TOKEN", "x")]);
    assert!(text(&out).contains("Missing dbaas endpoint"), "{}", text(&out));
    let out =
        env.tf_env(&ok, &["plan", "-input=false"], &[("DBAAS_ENDPOINT", "http://127.0.0.1:1"), ("DBAAS_TOKEN", "x")]);
    assert!(text(&out).contains("Cannot reach the dbaas API"), "{}", text(&out));
    let out = env.tf_env(
        &ok,
        &["plan", "-input=false"],
        &[("DBAAS_ENDPOINT", &env.endpoint), ("DBAAS_TOKEN", "dbaas_wrong")],
    );
    assert!(text(&out).contains("refused the token"), "{}", text(&out));
    let out = env.tf_env(&ok, &["plan", "-input=false"], &[("DBAAS_ENDPOINT", "ftp://x"), ("DBAAS_TOKEN", "x")]);
    assert!(!out.status.success());
    // Nothing was created by any of it.
    assert!(env.admin.list_databases("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_apply_of_twenty_databases() {
    let env = Env::start().await;
    let wd = env.workdir(
        "parallel",
        r#"
resource "dbaas_tenant" "team" {
  name = "team-p"
}
resource "dbaas_database" "db" {
  count    = 20
  tenant   = dbaas_tenant.team.name
  name     = "db-${count.index}"
  instance = "main"
}
"#,
    );
    let out = env.tf(&wd, &["apply", "-auto-approve", "-input=false", "-parallelism=10"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("21 added"));
    let dbs = env.admin.list_databases("tenant=team-p").await.unwrap();
    assert_eq!(dbs.len(), 20);
    assert!(dbs.iter().all(|d| d.status == dbaas_client::DatabaseStatus::Ready));
    assert_eq!(env.plan(&wd).0, 0);
    let out = env.tf(&wd, &["destroy", "-auto-approve", "-input=false", "-parallelism=10"]);
    assert!(out.status.success(), "{}", text(&out));
    // The tenant is gone (destroyed last) and none of its databases is left.
    assert!(env.admin.list_databases("").await.unwrap().iter().all(|d| d.tenant != "team-p"));
    assert!(!env.target_has_db("team-p_db-0").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn timed_out_apply_resumes_the_same_operation() {
    // Each of the ~8 provisioning steps takes 500 ms: a 1 s create timeout expires first.
    let env = Env::start_with(std::time::Duration::from_millis(500)).await;
    let slow = db_config("slow", "timeouts {\n    create = \"1s\"\n  }");
    let wd = env.workdir("timeout", &slow);
    let out = env.tf(&wd, &["apply", "-auto-approve", "-input=false"]);
    assert!(!out.status.success());
    let text = text(&out);
    assert!(text.contains("still running after 1s") && text.contains("resumes waiting"), "{text}");

    // The next apply (with room to wait) picks the same operation up: one database, one
    // provisioning operation, no error.
    env.write(&wd, &db_config("slow", "timeouts {\n    create = \"60s\"\n  }"));
    env.apply(&wd);
    let dbs = env.admin.list_databases("").await.unwrap();
    assert_eq!(dbs.len(), 1);
    let ops = env.admin.list_operations(&format!("target_id={}", dbs[0].id)).await.unwrap();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].attempts, 1);
    assert_eq!(env.plan(&wd).0, 0);
}

#[test]
fn run_by_hand_it_explains_itself() {
    let out = std::process::Command::new(PROVIDER).env_remove("TF_PLUGIN_MAGIC_COOKIE").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing may reach stdout, which carries the handshake");
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugin for Terraform"));
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_import_then_password_is_verified() {
    let env = Env::start().await;
    // Declared as it is registered (and as dev registers its instance): verify-full, its CA.
    let body = format!(
        "resource \"dbaas_instance\" \"main\" {{\n  name = \"main\"\n  host = \"127.0.0.1\"\n  port = {}\n  admin_user = \"postgres\"\n  \
         admin_password = \"{}\"\n  sslmode = \"verify-full\"\n  ca_cert = file(\"${{path.module}}/ca.pem\")\n  \
         environment = \"sandbox\"\n  max_databases = 100\n  allowed_extensions = [\"pgcrypto\", \"citext\"]\n}}\n",
        env.target.port, env.target.password
    );
    let wd = env.dir.path().join("instance");
    std::fs::create_dir_all(&wd).unwrap();
    std::fs::write(wd.join("ca.pem"), env.target.ca_cert.as_deref().unwrap()).unwrap();
    let wd = env.workdir("instance", &body);
    let out = env.tf(&wd, &["import", "-input=false", "dbaas_instance.main", "main"]);
    assert!(out.status.success(), "{}", text(&out));
    let (code, plan) = env.plan(&wd);
    assert_eq!(code, 2);
    assert!(plan.contains("admin_password") && !plan.contains("must be replaced"), "{plan}");
    env.apply(&wd);
    assert_eq!(env.plan(&wd).0, 0);
    // A wrong password is refused by the API's verification, on the attribute.
    env.write(&wd, &body.replace(&env.target.password, "wrong-password"));
    let out = env.tf(&wd, &["apply", "-auto-approve", "-input=false"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("28P01"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn maintenance_schedule_fires_and_round_trips() {
    let env = Env::start().await;
    let body = db_config("app", "")
        + r#"
resource "dbaas_maintenance_schedule" "analyze" {
  database_id = dbaas_database.orders.id
  kind        = "analyze"
  cron        = "*/2 * * * * *"
}
"#;
    let wd = env.workdir("schedule", &body);
    env.apply(&wd);
    let db_id: uuid::Uuid = env.outputs(&wd)["id"]["value"].as_str().unwrap().parse().unwrap();
    let mut ran = false;
    for _ in 0..50 {
        let ops = env.admin.list_operations(&format!("target_id={db_id}&kind=maintenance")).await.unwrap();
        if ops.iter().any(|o| o.status == dbaas_client::OperationStatus::Succeeded) {
            ran = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(ran, "the schedule never ran");
    // next_run_at moves on by itself; that is not a diff.
    assert_eq!(env.plan(&wd).0, 0);
    // The environment's backup policy gives the database schedules of its own (origin policy).
    let own = |list: Vec<dbaas_client::Schedule>| -> Vec<dbaas_client::Schedule> {
        list.into_iter().filter(|s| s.origin == "tenant").collect()
    };
    let sid = own(env.admin.list_schedules(db_id).await.unwrap())[0].id;
    assert!(env.tf(&wd, &["state", "rm", "dbaas_maintenance_schedule.analyze"]).status.success());
    let out = env.tf(&wd, &["import", "-input=false", "dbaas_maintenance_schedule.analyze", &format!("{db_id}/{sid}")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.plan(&wd).0, 0);
    // Bad cron: the API's message, on the attribute.
    env.write(&wd, &body.replace("*/2 * * * * *", "every day"));
    let out = env.tf(&wd, &["apply", "-auto-approve", "-input=false"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("invalid cron") && text(&out).contains("cron"), "{}", text(&out));
    env.write(&wd, &db_config("app", ""));
    env.apply(&wd);
    assert!(own(env.admin.list_schedules(db_id).await.unwrap()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_from_a_listed_backup_and_backup_settings() {
    let env = Env::start().await;
    let store = dbaas_testkit::tempdir();
    let path = store.path().to_str().unwrap().to_string();
    env.admin
        .create_backup_store(&dbaas_client::CreateBackupStore::filesystem(
            "fs",
            &path,
            vec![dbaas_client::Environment::Sandbox],
        ))
        .await
        .unwrap();
    let base = db_config("orders", "backup_retention_days = 5\n  backup_store = \"fs\"");
    let wd = env.workdir("restore", &base);
    env.apply(&wd);
    let id: uuid::Uuid = env.outputs(&wd)["id"]["value"].as_str().unwrap().parse().unwrap();
    let db = env.admin.get_database(id).await.unwrap();
    assert_eq!((db.backups.retention_days, db.backups.store.as_deref()), (Some(5), Some("fs")));
    let uri = env.outputs(&wd)["uris"]["value"]["admin"].as_str().unwrap().to_string();
    let mut c = connect(&uri).await.unwrap();
    c.execute("CREATE TABLE entries (amount int); INSERT INTO entries VALUES (100), (250)").await.unwrap();
    drop(c);
    let acc = env.admin.create_backup(id, &dbaas_client::CreateBackup::default()).await.unwrap();
    let op = env.admin.wait_operation(acc.operation.id, std::time::Duration::from_secs(120)).await.unwrap();
    assert_eq!(op.status, dbaas_client::OperationStatus::Succeeded);

    let restored = format!(
        "{base}\n{}",
        r#"
data "dbaas_backups" "orders" {
  database_id = dbaas_database.orders.id
}

resource "dbaas_database" "copy" {
  tenant       = dbaas_tenant.team.name
  name         = "orders-copy"
  instance     = "main"
  restore_from = { backup = data.dbaas_backups.orders.latest_succeeded_id }
}

output "copy_uri" {
  value     = dbaas_database.copy.admin_uri
  sensitive = true
}
output "backups" {
  value = data.dbaas_backups.orders.backups
}
"#
    );
    env.write(&wd, &restored);
    let out = env.apply(&wd);
    assert!(out.contains("1 added"), "{out}");
    let outputs = env.outputs(&wd);
    let listed = outputs["backups"]["value"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0]["status"].as_str(), listed[0]["reason"].as_str()), (Some("succeeded"), Some("manual")));
    let mut c = connect(outputs["copy_uri"]["value"].as_str().unwrap()).await.unwrap();
    let sum: i64 = sqlx::query_scalar("SELECT sum(amount) FROM entries").fetch_one(&mut c).await.unwrap();
    assert_eq!(sum, 350);
    assert_eq!(env.plan(&wd).0, 0, "no diff after a restore");

    // A backup that does not exist: an error on restore_from.backup.
    let bad = restored
        .replace("data.dbaas_backups.orders.latest_succeeded_id", "\"7d0c2a5e-0000-4000-8000-000000000000\"")
        .replace("orders-copy", "orders-other");
    env.write(&wd, &bad);
    let out = env.tf(&wd, &["apply", "-auto-approve", "-input=false"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("restore_from"), "{}", text(&out));
}

/// A tenant made elsewhere (the README's curl tour makes `team-a`): the apply says how to
/// import it, on the `name` attribute, instead of a bare 409.
#[tokio::test(flavor = "multi_thread")]
async fn an_existing_tenant_says_how_to_import_it() {
    let env = Env::start().await;
    env.admin.create_tenant(&dbaas_client::CreateTenant { name: "team-x".into(), max_databases: None }).await.unwrap();
    let wd = env.workdir("tenant-exists", "resource \"dbaas_tenant\" \"team\" {\n  name = \"team-x\"\n}\n");
    let out = env.tf(&wd, &["apply", "-auto-approve", "-input=false"]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("Tenant already exists") && said.contains("terraform import <address> team-x"), "{said}");
    // Imported as it says, the next plan is empty.
    let out = env.tf(&wd, &["import", "-input=false", "dbaas_tenant.team", "team-x"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.plan(&wd).0, 0);
}
