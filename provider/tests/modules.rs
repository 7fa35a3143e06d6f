//! The reusable modules: formatted, valid, and applied for real (then destroyed).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules").canonicalize().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn modules_are_formatted_valid_and_apply() {
    let env = Env::start().await;
    let out = std::process::Command::new(terraform_bin())
        .args(["fmt", "-check", "-recursive"])
        .arg(modules_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "terraform fmt -check: {}", text(&out));

    // Each module's example validates (with the module source pointed at the checkout).
    for m in ["postgres-database", "tenant", "postgres-instance"] {
        let example = std::fs::read_to_string(modules_dir().join(m).join("examples/basic/main.tf")).unwrap();
        let wd = env.dir.path().join(format!("example-{m}"));
        std::fs::create_dir_all(&wd).unwrap();
        std::fs::write(
            wd.join("main.tf"),
            example.replace("\"../..\"", &format!("\"{}\"", modules_dir().join(m).display())),
        )
        .unwrap();
        let out = env.tf(&wd, &["init", "-input=false"]);
        assert!(out.status.success(), "init {m}: {}", text(&out));
        let out = env.tf(&wd, &["validate"]);
        assert!(out.status.success(), "validate {m}: {}", text(&out));
    }

    let src = |m: &str| modules_dir().join(m).display().to_string();

    // tenant: a tenant and a token that works for it.
    let wd = env.workdir(
        "mod-tenant",
        &format!(
            "module \"team\" {{\n  source = \"{}\"\n  name = \"team-m\"\n  max_databases = 3\n}}\noutput \"token\" {{\n  value = module.team.token\n  sensitive = true\n}}\n",
            src("tenant")
        ),
    );
    env.apply(&wd);
    let token = env.outputs(&wd)["token"]["value"].as_str().unwrap().to_string();
    let team = dbaas_client::Client::new(&env.endpoint, &token).unwrap();
    assert_eq!(team.list_tenants().await.unwrap()[0].name, "team-m");
    assert_eq!(env.plan(&wd).0, 0);

    // postgres-database, with the team's own token and placement by environment.
    let wd_db = env.workdir(
        "mod-database",
        &format!(
            "module \"orders\" {{\n  source = \"{}\"\n  name = \"orders\"\n  environment = \"sandbox\"\n  extensions = [\"pgcrypto\"]\n  backup_retention_days = 5\n}}\n\
             output \"uris\" {{\n  value = module.orders.uris\n  sensitive = true\n}}\noutput \"name\" {{\n  value = module.orders.database_name\n}}\n",
            src("postgres-database")
        ),
    );
    let out = env.tf_env(
        &wd_db,
        &["apply", "-auto-approve", "-input=false"],
        &[("DBAAS_ENDPOINT", &env.endpoint), ("DBAAS_TOKEN", &token)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let outs = {
        let o = env.tf_env(&wd_db, &["output", "-json"], &[]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    assert_eq!(outs["name"]["value"], "team-m_orders");
    let listed = team.list_databases("").await.unwrap();
    assert_eq!(listed[0].backups.retention_days, Some(5), "the module passes backup settings");
    for access in ["read", "write", "admin"] {
        connect(outs["uris"]["value"][access].as_str().unwrap()).await.unwrap();
    }
    let out = env.tf_env(
        &wd_db,
        &["destroy", "-auto-approve", "-input=false"],
        &[("DBAAS_ENDPOINT", &env.endpoint), ("DBAAS_TOKEN", &token)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!env.target_has_db("team-m_orders").await);

    // Variable validation catches bad input before the provider sees it.
    let wd_bad = env.workdir(
        "mod-bad",
        &format!(
            "module \"bad\" {{\n  source = \"{}\"\n  name = \"Bad_Name\"\n  environment = \"moon\"\n  backup_retention_days = 0\n}}\n",
            src("postgres-database")
        ),
    );
    let (code, out) = env.plan(&wd_bad);
    assert_eq!(code, 1);
    assert!(out.contains("The name must start with a lower-case letter"), "{out}");
    assert!(out.contains("The environment must be sandbox, preprod or prod"), "{out}");
    assert!(out.contains("backup_retention_days must be between 1 and 36500"), "{out}");

    // postgres-instance: registers a server, then unregisters it.
    let wd_inst = env.workdir(
        "mod-instance",
        &format!(
            "module \"second\" {{\n  source = \"{}\"\n  name = \"second\"\n  host = \"127.0.0.1\"\n  port = {}\n  admin_user = \"postgres\"\n  \
             admin_password = \"{}\"\n  environment = \"preprod\"\n  labels = {{ tier = \"silver\" }}\n}}\n",
            src("postgres-instance"),
            env.target.port,
            env.target.password
        ),
    );
    env.apply(&wd_inst);
    assert_eq!(env.admin.get_instance("second").await.unwrap().environment, dbaas_client::Environment::Preprod);
    assert_eq!(env.plan(&wd_inst).0, 0);
    let out = env.tf(&wd_inst, &["destroy", "-auto-approve", "-input=false"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.admin.get_instance("second").await.unwrap_err().status(), Some(404));

    // postgres-instance, managed: a cluster provisioned on a registered host, then removed.
    let host = env.local_host("mod-box", [25700, 25709]).await;
    let wd_managed = env.workdir(
        "mod-managed",
        &format!(
            "module \"own\" {{\n  source = \"{}\"\n  name = \"own\"\n  kind = \"managed\"\n  host = \"mod-box\"\n  \
             pg_version = \"15\"\n  environment = \"sandbox\"\n  dedicated_tenant = \"team-m\"\n  settings = {{ work_mem = \"4MB\" }}\n}}\n\
             output \"ca\" {{\n  value = module.own.ca_cert\n}}\n",
            src("postgres-instance"),
        ),
    );
    env.apply(&wd_managed);
    let own = env.admin.get_instance("own").await.unwrap();
    assert_eq!(own.status, dbaas_client::InstanceStatus::Ready);
    assert_eq!(own.dedicated_tenant.as_deref(), Some("team-m"));
    assert!(env.outputs(&wd_managed)["ca"]["value"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    assert_eq!(env.plan(&wd_managed).0, 0);
    assert_eq!(instance_dirs(&host.0), 1);
    let out = env.tf(&wd_managed, &["destroy", "-auto-approve", "-input=false"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(instance_dirs(&host.0), 0);

    // And the tenant goes last.
    let out = env.tf(&wd, &["destroy", "-auto-approve", "-input=false"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(team.list_databases("").await.unwrap_err().status(), Some(401));
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_example_applies_and_examples_are_formatted() {
    let env = Env::start().await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").canonicalize().unwrap();
    let out = std::process::Command::new(terraform_bin())
        .args(["fmt", "-check", "-recursive"])
        .arg(&examples)
        .output()
        .unwrap();
    assert!(out.status.success(), "terraform fmt -check examples: {}", text(&out));

    // The quickstart targets the dev instance `local`: register one under that name.
    let local = env.admin.get_instance("main").await.unwrap();
    env.admin
        .create_instance(&dbaas_client::CreateInstance {
            sslmode: dbaas_client::SslMode::Require,
            max_databases: 10,
            allowed_extensions: vec!["pgcrypto".into()],
            ..dbaas_client::CreateInstance::external(
                "local",
                &local.host,
                local.port,
                "postgres",
                &env.target.password,
                dbaas_client::Environment::Sandbox,
            )
        })
        .await
        .unwrap();
    let wd = env.dir.path().join("quickstart");
    std::fs::create_dir_all(&wd).unwrap();
    std::fs::copy(examples.join("quickstart/main.tf"), wd.join("main.tf")).unwrap();
    assert!(env.tf(&wd, &["init", "-input=false"]).status.success());
    env.apply(&wd);
    let out = env.outputs(&wd);
    let mut admin = connect(out["admin_uri"]["value"].as_str().unwrap()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE hello (id int); INSERT INTO hello VALUES (1)").execute(&mut admin).await.unwrap();
    let mut read = connect(out["read_uri"]["value"].as_str().unwrap()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM hello").fetch_one(&mut read).await.unwrap();
    assert_eq!(n, 1);
    drop((admin, read));
    let out = env.tf(&wd, &["destroy", "-auto-approve", "-input=false"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn packaged_zip_installs_from_a_packed_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/package-provider.sh");
    let out =
        std::process::Command::new("bash").arg(&script).arg(PROVIDER).arg(dir.path().join("dist")).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let sums = std::process::Command::new("sha256sum")
        .arg("-c")
        .arg(format!("terraform-provider-dbaas_{VERSION}_SHA256SUMS"))
        .current_dir(dir.path().join("dist"))
        .output()
        .unwrap();
    assert!(sums.status.success(), "{}", text(&sums));
    let mirror = dir.path().join("mirror/registry.terraform.io/dbaas/dbaas");
    std::fs::create_dir_all(&mirror).unwrap();
    let zip = format!("terraform-provider-dbaas_{VERSION}_linux_amd64.zip");
    std::fs::copy(dir.path().join("dist").join(&zip), mirror.join(&zip)).unwrap();
    std::fs::write(
        dir.path().join("cli.tfrc"),
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
            dir.path().join("mirror").display()
        ),
    )
    .unwrap();
    let wd = dir.path().join("wd");
    std::fs::create_dir_all(&wd).unwrap();
    std::fs::write(
        wd.join("main.tf"),
        format!("terraform {{\n  required_providers {{\n    dbaas = {{ source = \"dbaas/dbaas\", version = \"{VERSION}\" }}\n  }}\n}}\n"),
    )
    .unwrap();
    let out = std::process::Command::new(terraform_bin())
        .args(["init", "-no-color", "-input=false"])
        .current_dir(&wd)
        .env("TF_CLI_CONFIG_FILE", dir.path().join("cli.tfrc"))
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    assert!(text(&out).contains("Installed dbaas/dbaas v0.1.0"), "{}", text(&out));
}
