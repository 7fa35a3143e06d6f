//! The runnable examples run against a real API.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn rest_lifecycle_script_runs() {
    let h = Harness::start().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rest/lifecycle.sh");
    let run = |token: String| {
        let endpoint = h.endpoint().to_string();
        let script = script.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(&script)
                .env("DBAAS_ENDPOINT", endpoint)
                .env("DBAAS_TOKEN", token)
                .env("TENANT", "demo")
                .env("INSTANCE", "main")
                .output()
                .unwrap()
        })
    };
    let out = run(h.admin_token.clone()).await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("operation: succeeded").count(), 5, "{text}");
    for access in ["admin", "write", "read"] {
        assert!(text.contains(&format!("demo_rest-demo_{access}\n")), "psql as {access} missing:\n{text}");
    }
    // The idempotent retry made one database, now deleted; nothing is left on the instance.
    assert_eq!(h.count("SELECT count(*) FROM databases").await, 1);
    assert_eq!(h.count("SELECT count(*) FROM databases WHERE status = 'deleted'").await, 1);
    assert!(h.target_roles_like("demo-rest-demo%").await.is_empty());

    // A refused call makes the script fail loudly, not carry on.
    let out = run("dbaas_wrong".into()).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"));
}
