//! The README's curl tour, taken from README.md as it stands (not a copy), run by bash against
//! a real `dbaas-api dev`: it fails on any non-2xx answer, on an operation that does not
//! succeed, and on any command that fails. Two substitutions only, both named here: dev's
//! data dir (`/var/tmp/dbaas-dev`) is this test's, and `cargo run -q --release -p dbaas-api
//! --` is the binary under test (the release build is not this suite's).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::Command;

use common::dev::Dev;
use common::*;
use dbaas_client::*;

/// The first ```sh block after the tour's heading.
fn tour(readme: &str) -> String {
    let from = readme.find("## A five-minute tour with curl").expect("the README has the tour");
    let rest = &readme[from..];
    let start = rest.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let end = rest[start..].find("\n```").expect("the block ends");
    rest[start..start + end].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_curl_tour_runs_as_written() {
    let dev = Dev::start(&[]).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = tour(&std::fs::read_to_string(root.join("README.md")).unwrap());
    let dir = dev.dir.to_str().unwrap();
    for (what, count) in [("/var/tmp/dbaas-dev", 1), ("cargo run -q --release -p dbaas-api --", 1)] {
        assert_eq!(text.matches(what).count(), count, "the tour names {what} {count} time(s)");
    }
    assert_eq!(text.matches("16432").count(), 2, "the tour names dev's proxy port twice");
    let script = text
        .replace("/var/tmp/dbaas-dev", dir)
        .replace("cargo run -q --release -p dbaas-api --", BIN)
        .replace("16432", &dev.proxy_port.to_string());
    let work = tempdir();
    let failures = work.path().join("curl-failures");
    // Every curl the tour runs fails on a non-2xx answer (and says which); any failing
    // command ends the script.
    let prelude = format!(
        "set -euo pipefail\n\
         curl() {{ command curl --fail-with-body \"$@\" || {{ echo \"curl $*\" >> '{}'; return 1; }}; }}\n",
        failures.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .current_dir(work.path())
        // dev's data dir for `backup-open` run without flags, as the README runs it.
        .env("DBAAS_DEV_DIR", dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = std::fs::read_to_string(&failures).unwrap_or_default();
    assert!(out.status.success() && failed.is_empty(), "the tour failed: {failed}\n{stderr}\n---\n{stdout}");

    // Every operation it waited for ended well (`wait_op` prints how each ended)...
    let statuses: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(kind, status)| {
            kind.parse::<OperationKind>().is_ok()
                && ["succeeded", "failed", "cancelled", "queued", "running"].contains(&status.trim())
        })
        .collect();
    assert!(statuses.len() >= 10, "the tour waits for its operations: {stdout}");
    assert!(statuses.iter().all(|(_, s)| s.trim() == "succeeded"), "{statuses:?}\n{stdout}");
    // ...and so did every operation of the tour's tenant, waited for or not.
    let ops = dev.admin.list_operations("?limit=200").await.unwrap();
    let bad: Vec<_> = ops
        .iter()
        .filter(|o| o.tenant.as_deref() == Some("team-a") && o.status == OperationStatus::Failed)
        .map(|o| (o.kind, o.error.clone()))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    // The repack had a bloated table to work on, and the restore by hand restored it.
    assert!(stdout.contains("items: repacked"), "{stdout}");
    let dbs = dev.admin.list_databases("").await.unwrap();
    assert!(dbs.iter().any(|d| d.name == "orders-by-hand"), "{dbs:?}");
    assert!(work.path().join("orders.dump").metadata().unwrap().len() > 0);
}
