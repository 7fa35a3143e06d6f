//! Acceptance tests of what keeps secrets out of CI variables and Terraform state: a CI job
//! signing in with its OIDC identity token, and write-only arguments. The real terraform
//! binary, the provider from a filesystem mirror, the real API and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// A CI job applies with its OIDC identity token and no stored API token: the provider
/// exchanges it once and keeps the API token for the job's later Terraform walks and
/// commands; the identity token cannot be exchanged again elsewhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_ci_job_applies_with_its_identity_token() {
    use dbaas_testkit::oidc::{issuer, job, rsa_key, sign, AUD};
    let env = Env::start().await;
    let iss = issuer().await;
    let key = rsa_key(env.dir.path(), "ci-1");
    iss.published.lock().unwrap().push(key.jwk.clone());
    env.admin.create_tenant(&dbaas_client::CreateTenant { name: "team-ci".into(), max_databases: None }).await.unwrap();
    let claims = [("project_id", "42"), ("ref_protected", "true")].map(|(k, v)| (k.to_string(), v.to_string()));
    env.admin
        .create_oidc_binding(&dbaas_client::CreateOidcBinding {
            tenant: "team-ci".into(),
            name: "deploy".into(),
            issuer: iss.url.clone(),
            audience: AUD.into(),
            claims: claims.into_iter().collect(),
            access: None,
            unprotected: false,
        })
        .await
        .unwrap();
    let body = "resource \"dbaas_database\" \"app\" {\n  name     = \"from-ci\"\n  instance = \"main\"\n}\n";
    let wd = env.workdir("oidc", body);
    let identity = sign(&key, &job(&iss.url, "42", "main", true));
    let ci = [("DBAAS_ENDPOINT", env.endpoint.as_str()), ("DBAAS_OIDC_TOKEN", identity.as_str())];
    let out = env.tf_env(&wd, &["apply", "-auto-approve", "-input=false"], &ci);
    assert!(out.status.success(), "apply with the identity token:\n{}", text(&out));
    let dbs = env.admin.list_databases("tenant=team-ci").await.unwrap();
    assert!(dbs.iter().any(|d| d.name == "from-ci"), "{dbs:?}");
    // The job's next command reuses the API token the exchange gave (kept 0600).
    let out = env.tf_env(&wd, &["plan", "-input=false", "-detailed-exitcode"], &ci);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let kept: Vec<_> =
        std::fs::read_dir(wd.join(".terraform/dbaas-oidc")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(kept.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o777, 0o600);
    // Elsewhere (another data directory), the same identity token is a replay.
    let other = env.dir.path().join("other-data");
    let replay = [
        ("DBAAS_ENDPOINT", env.endpoint.as_str()),
        ("DBAAS_OIDC_TOKEN", identity.as_str()),
        ("TF_DATA_DIR", other.to_str().unwrap()),
    ];
    let out = env.tf_env(&wd, &["init", "-input=false"], &replay);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.tf_env(&wd, &["plan", "-input=false"], &replay);
    assert!(!out.status.success() && text(&out).contains("replayed"), "{}", text(&out));
}

/// An external instance registered with a write-only admin password: sent to the service,
/// never in the plan or the state; a new version sends it again.
#[tokio::test(flavor = "multi_thread")]
async fn write_only_admin_password_never_reaches_state() {
    let env = Env::start().await;
    let req = dbaas_api::dev::instance_request(&env.target, "ext");
    let password = req.admin_password.clone().unwrap();
    let dir = env.dir.path().join("wo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), req.ca_cert.clone().unwrap()).unwrap();
    let body = |version: u32| {
        format!(
            "resource \"dbaas_instance\" \"ext\" {{\n  name        = \"ext\"\n  host        = \"127.0.0.1\"\n  port        = {}\n  \
             admin_user  = \"postgres\"\n  admin_password_wo = \"{password}\"\n  admin_password_wo_version = {version}\n  \
             sslmode     = \"verify-full\"\n  ca_cert     = file(\"ca.pem\")\n  environment = \"sandbox\"\n}}\n",
            req.port.unwrap()
        )
    };
    let wd = env.workdir("wo", &body(1));
    let out = env.tf(&wd, &["plan", "-input=false", "-out=wo.tfplan"]);
    assert!(out.status.success(), "{}", text(&out));
    env.apply(&wd);
    assert_eq!(env.admin.get_instance("ext").await.unwrap().status, dbaas_client::InstanceStatus::Ready);
    let state = std::fs::read_to_string(wd.join("terraform.tfstate")).unwrap();
    assert!(!state.contains(&password), "the write-only password is in the state");
    let plan = std::fs::read(wd.join("wo.tfplan")).unwrap();
    assert!(!String::from_utf8_lossy(&plan).contains(&password), "the write-only password is in the saved plan");
    let show = env.tf(&wd, &["show", "-json"]);
    assert!(!String::from_utf8_lossy(&show.stdout).contains(&password));
    let (code, replan) = env.plan(&wd);
    assert_eq!(code, 0, "a write-only value is no change:\n{replan}");
    // A new version sends the password again (the service re-verifies the login with it).
    env.write(&wd, &body(2));
    let (code, plan) = env.plan(&wd);
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("admin_password_wo_version") && !plan.contains(&password), "{plan}");
    env.apply(&wd);
    assert!(!std::fs::read_to_string(wd.join("terraform.tfstate")).unwrap().contains(&password));
    // With both passwords set, validation says so at the attribute.
    env.write(&wd, &body(2).replace("  sslmode", "  admin_password = \"x\"\n  sslmode"));
    let (code, out) = env.plan(&wd);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Conflicting passwords"), "{out}");
}
