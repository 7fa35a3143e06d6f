//! A managed instance through Terraform: provisioned on a local host, a database on it,
//! settings changed in place, import without diff, destroy removing the cluster.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

const CONFIG: &str = r#"
resource "dbaas_instance" "pg" {
  name               = "tf-managed"
  kind               = "managed"
  host               = "box"
  version            = "15"
  environment        = "sandbox"
  settings           = { work_mem = "WORK_MEM" }
  allowed_extensions = ["pgcrypto"]
}

resource "dbaas_tenant" "team" {
  name = "team-m"
}

resource "dbaas_database" "app" {
  tenant   = dbaas_tenant.team.name
  name     = "app"
  instance = dbaas_instance.pg.name
}

output "write_uri" {
  value     = dbaas_database.app.write_uri
  sensitive = true
}
output "port" {
  value = dbaas_instance.pg.port
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn managed_instance_apply_update_import_destroy() {
    let env = Env::start().await;
    let host = env.local_host("box", [25600, 25609]).await;
    let root = host.0.clone();

    let wd = env.workdir("managed", &CONFIG.replace("WORK_MEM", "8MB"));
    env.apply(&wd);
    assert_eq!(instance_dirs(&root), 1);
    let out = env.outputs(&wd);
    let uri = out["write_uri"]["value"].as_str().unwrap().to_string();
    assert!(uri.contains(&format!(":{}/", out["port"]["value"])), "{uri}");
    let mut c = connect(&uri).await.unwrap();
    let wm: String = sqlx::query_scalar("SHOW work_mem").fetch_one(&mut c).await.unwrap();
    assert_eq!(wm, "8MB");
    let (code, plan) = env.plan(&wd);
    assert_eq!(code, 0, "no diff after apply:\n{plan}");

    // A settings change is in place (reload), not a replacement.
    env.write(&wd, &CONFIG.replace("WORK_MEM", "16MB"));
    let (code, plan) = env.plan(&wd);
    assert_eq!(code, 2);
    assert!(plan.contains("updated in-place") && !plan.contains("must be replaced"), "{plan}");
    env.apply(&wd);
    let mut c = connect(&uri).await.unwrap();
    let wm: String = sqlx::query_scalar("SHOW work_mem").fetch_one(&mut c).await.unwrap();
    assert_eq!(wm, "16MB");
    assert_eq!(env.plan(&wd).0, 0);

    // Import by name gives back the same state.
    let out = env.tf(&wd, &["state", "rm", "dbaas_instance.pg"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.tf(&wd, &["import", "-input=false", "dbaas_instance.pg", "tf-managed"]);
    assert!(out.status.success(), "{}", text(&out));
    let (code, plan) = env.plan(&wd);
    assert_eq!(code, 0, "no diff after import:\n{plan}");

    // A bad setting fails at apply with the attribute named, and changes nothing.
    env.write(&wd, &CONFIG.replace("WORK_MEM", "lots"));
    let out = env.tf(&wd, &["apply", "-auto-approve", "-input=false"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("settings.work_mem") && t.contains("invalid value for parameter"), "{t}");
    let wm: String = sqlx::query_scalar("SHOW work_mem").fetch_one(&mut connect(&uri).await.unwrap()).await.unwrap();
    assert_eq!(wm, "16MB");

    // Destroy: database, then the instance (cluster stopped, directory removed).
    env.write(&wd, &CONFIG.replace("WORK_MEM", "16MB"));
    let out = env.tf(&wd, &["destroy", "-auto-approve", "-input=false"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(instance_dirs(&root), 0);
    assert_eq!(env.admin.get_instance("tf-managed").await.unwrap_err().status(), Some(404));
}
