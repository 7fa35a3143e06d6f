//! The shipped alert rules and dashboards against the real thing: `promtool test rules` on
//! the rules' unit tests, then a real Prometheus (Debian's package) discovering the
//! instances of a `dbaas-api dev` process through `GET /v1/prometheus/targets`, scraping them and the service, and a
//! tenant scraping its own databases. With pgbench load and a table full of dead rows: the
//! per-database series exist with the service's labels, every dashboard panel's query
//! evaluates (core panels non-empty), the dead-rows alert fires and resolves after a VACUUM,
//! and the instance-down alert fires when the instance stops.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::dev::Dev;
use common::*;
use dbaas_client::*;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: run `bash scripts/ensure-deps.sh` (installs Debian's prometheus)"
    );
    path
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let dir = repo().join("deploy/prometheus");
    let check =
        Command::new(tool("promtool")).arg("check").arg("rules").arg(dir.join("dbaas.rules.yml")).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let out = Command::new(tool("promtool"))
        .arg("test")
        .arg("rules")
        .arg("dbaas.rules.test.yml")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Every rule has a test that makes it fire.
    let rules = std::fs::read_to_string(dir.join("dbaas.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("dbaas.rules.test.yml")).unwrap();
    for line in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(
            tests.contains(&format!("alertname: {line}\n        exp_alerts:\n          - ")),
            "{line} is never tested firing"
        );
    }
}

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Started with the shipped rules, `for:` shortened to 0s (the test cannot wait minutes).
    fn start(api: &str, admin_token: &str, tenant_token: &str) -> Self {
        let dir = tempdir();
        let rules = std::fs::read_to_string(repo().join("deploy/prometheus/dbaas.rules.yml")).unwrap();
        let rules: String = rules
            .lines()
            .map(|l| if l.trim_start().starts_with("for: ") { "" } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
        let host = api.trim_start_matches("http://");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [rules.yml]\n\
             scrape_configs:\n\
             - job_name: dbaas-instances\n\
             \x20 authorization: {{credentials: '{admin_token}'}}\n\
             \x20 http_sd_configs:\n\
             \x20 - url: '{api}/v1/prometheus/targets'\n\
             \x20   refresh_interval: 2s\n\
             \x20   authorization: {{type: Bearer, credentials: '{admin_token}'}}\n\
             - job_name: dbaas-service\n\
             \x20 static_configs: [{{targets: ['{host}']}}]\n\
             - job_name: team-a\n\
             \x20 honor_labels: true\n\
             \x20 metrics_path: /v1/prometheus/metrics\n\
             \x20 authorization: {{credentials: '{tenant_token}'}}\n\
             \x20 static_configs: [{{targets: ['{host}']}}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    async fn query(&self, q: &str) -> Value {
        let r = reqwest::Client::new().get(format!("{}/api/v1/query", self.url)).query(&[("query", q)]).send().await;
        match r {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// The result vector of an instant query; panics on a query error.
    async fn vector(&self, q: &str) -> Vec<Value> {
        let v = self.query(q).await;
        assert_eq!(v["status"], "success", "{q}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    async fn firing(&self, alert: &str, matcher: &str) -> bool {
        let q = format!("ALERTS{{alertname=\"{alert}\",alertstate=\"firing\"{matcher}}}");
        !self.query(&q).await["data"]["result"].as_array().map(|a| a.is_empty()).unwrap_or(true)
    }
}

/// Every panel's (and variable's) query, with the dashboards' variables filled in: the
/// title, the query, and whether it is a core panel.
fn dashboard_queries(vars: &[(&str, &str)]) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for file in ["fleet.json", "database.json"] {
        let d: Value =
            serde_json::from_str(&std::fs::read_to_string(repo().join("deploy/grafana").join(file)).unwrap()).unwrap();
        let fill = |q: &str| vars.iter().fold(q.to_string(), |q, (k, v)| q.replace(k, v));
        for p in d["panels"].as_array().unwrap() {
            let core = p["description"].as_str().unwrap_or("").starts_with("Core panel");
            for t in p["targets"].as_array().unwrap() {
                out.push((format!("{file}: {}", p["title"]), fill(t["expr"].as_str().unwrap()), core));
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if let Some(q) = v["query"]["query"].as_str() {
                // label_values(<selector>, <label>): the selector must select something.
                let inner = q.trim_start_matches("label_values(").rsplit_once(',').unwrap().0.to_string();
                out.push((format!("{file}: variable {}", v["name"]), fill(&inner), true));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_discovers_scrapes_and_alerts() {
    // As a team would try it: `dbaas-api dev` (collecting every second), its `local` instance.
    let dev = Dev::start(&[("DBAAS_METRICS_INTERVAL_MS", "1000")]).await;
    dev.admin.create_tenant(&CreateTenant { name: "team-a".into(), max_databases: None }).await.unwrap();
    let tok =
        dev.admin.create_token(&CreateToken { tenant: Some("team-a".into()), ..Default::default() }).await.unwrap();
    let a = dev.admin.with_token(&tok.secret);
    let acc = a.create_database(&CreateDatabase { instance: Some("local".into()), ..db_req("orders") }).await.unwrap();
    let op = a.wait_operation(acc.operation.clone().unwrap().id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    let admin = a.get_credential(acc.database.id, Access::Admin).await.unwrap();
    let prom = Prometheus::start(&dev.endpoint, &dev.token, a.token());

    // Load: pgbench tables and transactions, and a table of mostly dead rows.
    let bin = dbaas_api::pgcluster::find_bin_dir().unwrap().join("pgbench");
    let out = Command::new(&bin).args(["-i", "-q", "-s", "1", &admin.uri]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let load =
        Command::new(&bin).args(["-T", "8", "-c", "2", &admin.uri]).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let mut c = connect_as(&admin).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE churn (id int) WITH (autovacuum_enabled = false); \
         INSERT INTO churn SELECT generate_series(1, 20000); DELETE FROM churn WHERE id > 2000;",
    )
    .execute(&mut c)
    .await
    .unwrap();

    let sel = "tenant=\"team-a\",database=\"orders\",instance=\"local\",environment=\"sandbox\"";
    wait_until("Prometheus has the database's series from discovery", Duration::from_secs(90), || async {
        !prom.query(&format!("pg_stat_database_xact_commit{{{sel},job=\"dbaas-instances\"}}")).await["data"]["result"]
            .as_array()
            .map(|a| a.is_empty())
            .unwrap_or(true)
    })
    .await;
    wait_until("transactions are counted", Duration::from_secs(60), || async {
        !prom.vector(&format!("rate(pg_stat_database_xact_commit{{{sel}}}[20s]) > 1")).await.is_empty()
    })
    .await;
    let _ = load.map(|mut l| l.wait());
    // The tenant's own scrape keeps the service's labels (honor_labels).
    assert!(!prom.vector(&format!("pg_database_size_bytes{{{sel},job=\"team-a\"}}")).await.is_empty());
    assert!(prom.vector("pg_database_size_bytes{job=\"team-a\",tenant!=\"team-a\"}").await.is_empty());
    // The service's own gauges.
    assert!(!prom.vector("dbaas_workers{job=\"dbaas-service\"}").await.is_empty());

    // The dead-row alert fires, then resolves once the table is vacuumed.
    wait_until("PostgresDeadTuples fires", Duration::from_secs(90), || async {
        prom.firing("PostgresDeadTuples", ",database=\"orders\"").await
    })
    .await;

    // Every dashboard query evaluates; core panels have data.
    let vars = [("$tenant", "team-a"), ("$database", "orders"), ("$__rate_interval", "30s")];
    for (title, q, core) in dashboard_queries(&vars) {
        let r = prom.vector(&q).await;
        assert!(!core || !r.is_empty(), "core panel {title} is empty: {q}");
    }

    // The dashboards' panels over the last minutes, plotted from this run (docs/monitoring.md
    // shows them: target/dashboards/*.svg).
    plot_dashboards(&prom, &vars).await;

    sqlx::query("VACUUM churn").execute(&mut c).await.unwrap();
    drop(c);
    wait_until("PostgresDeadTuples resolves", Duration::from_secs(90), || async {
        !prom.firing("PostgresDeadTuples", ",database=\"orders\"").await
    })
    .await;

    // The instance stops: the down alert fires.
    dev.stop_local_instance();
    wait_until("PostgresInstanceDown fires", Duration::from_secs(90), || async {
        prom.firing("PostgresInstanceDown", ",instance=\"local\"").await
    })
    .await;
}

impl Prometheus {
    /// `[(series label, [(t, v)])]` of a range query over the last `seconds`.
    async fn range(&self, q: &str, seconds: i64) -> Vec<(String, Vec<(f64, f64)>)> {
        let end = chrono::Utc::now().timestamp();
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/query_range", self.url))
            .query(&[("query", q), ("start", &(end - seconds).to_string()), ("end", &end.to_string()), ("step", "2")])
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "success", "{q}: {v}");
        v["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let m = s["metric"].as_object().cloned().unwrap_or_default();
                let label = ["relname", "state", "kind", "instance", "dbaas_instance", "database"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(|x| x.as_str()).map(str::to_string))
                    .unwrap_or_default();
                let points = s["values"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| Some((p[0].as_f64()?, p[1].as_str()?.parse::<f64>().ok()?)))
                    .filter(|(_, y)| y.is_finite())
                    .collect();
                (label, points)
            })
            .collect()
    }
}

/// One SVG per dashboard: each panel's series over the run, small multiples in two columns.
async fn plot_dashboards(prom: &Prometheus, vars: &[(&str, &str)]) {
    const W: f64 = 420.0;
    const H: f64 = 170.0;
    const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let out_dir = repo().join("target/dashboards");
    std::fs::create_dir_all(&out_dir).unwrap();
    for file in ["fleet", "database"] {
        let d: Value =
            serde_json::from_str(&std::fs::read_to_string(repo().join(format!("deploy/grafana/{file}.json"))).unwrap())
                .unwrap();
        // Row panels only group the ones below them.
        let panels: Vec<&Value> = d["panels"].as_array().unwrap().iter().filter(|p| p["type"] != "row").collect();
        let rows = panels.len().div_ceil(2);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"15\">{} (from a test run)</text>\n",
            2.0 * W,
            30.0 + rows as f64 * H,
            d["title"].as_str().unwrap()
        );
        for (i, p) in panels.iter().enumerate() {
            let (x0, y0) = ((i % 2) as f64 * W, 30.0 + (i / 2) as f64 * H);
            let mut q = p["targets"][0]["expr"].as_str().unwrap().to_string();
            for (k, v) in vars {
                q = q.replace(k, v);
            }
            let series: Vec<(String, Vec<(f64, f64)>)> = prom.range(&q, 120).await.into_iter().take(5).collect();
            let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
            let title = p["title"].as_str().unwrap().replace('&', "&amp;").replace('<', "&lt;");
            svg += &format!("<g transform=\"translate({x0},{y0})\"><rect x=\"8\" y=\"4\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#ccc\"/>\n<text x=\"14\" y=\"20\">{title}</text>\n", W - 16.0, H - 10.0);
            if all.is_empty() {
                svg += "<text x=\"14\" y=\"90\" fill=\"#888\">no data in this run</text></g>\n";
                continue;
            }
            let (tmin, tmax) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), (t, _)| (a.min(*t), b.max(*t)));
            let (vmin, vmax) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, v)| (a.min(*v), b.max(*v)));
            let (vmin, vmax) = if vmax - vmin < 1e-12 { (vmin - 1.0, vmax + 1.0) } else { (vmin, vmax) };
            let px = |t: f64| 60.0 + (t - tmin) / (tmax - tmin).max(1.0) * (W - 90.0);
            let py = |v: f64| H - 25.0 - (v - vmin) / (vmax - vmin) * (H - 60.0);
            svg += &format!(
                "<text x=\"12\" y=\"{:.0}\" fill=\"#555\">{:.3}</text><text x=\"12\" y=\"{:.0}\" fill=\"#555\">{:.3}</text>\n",
                py(vmax) + 4.0,
                vmax,
                py(vmin) + 4.0,
                vmin
            );
            for (j, (label, points)) in series.iter().enumerate() {
                let pts: Vec<String> = points.iter().map(|(t, v)| format!("{:.1},{:.1}", px(*t), py(*v))).collect();
                let color = COLORS[j % COLORS.len()];
                svg += &format!(
                    "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                    pts.join(" ")
                );
                let label = label.replace('&', "&amp;").replace('<', "&lt;");
                svg +=
                    &format!("<text x=\"{:.0}\" y=\"34\" fill=\"{color}\">{label}</text>\n", 150.0 + j as f64 * 55.0);
            }
            svg += "</g>\n";
        }
        svg += "</svg>\n";
        std::fs::write(out_dir.join(format!("{file}.svg")), svg).unwrap();
    }
}
