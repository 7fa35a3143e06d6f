//! Three `dbaas-api serve` replicas as deployed: each in its own network namespace with its
//! own address (`ip netns` + veth on a bridge), behind HAProxy (Debian's) health-checking
//! `/readyz`, sharing one state database. During a `terraform apply` of 50 databases every
//! replica is restarted in turn (SIGTERM, drain, start) with no failed request and no failed
//! operation; a replica SIGKILLed mid-operation has its operations resumed by another; a
//! replica cut off from the state database (its link down) loses its claims and another
//! replica finishes its operations, each exactly once. Needs root (network namespaces).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{install_provider, terraform, text};
use dbaas_api::pgcluster::{free_port, Cluster, ClusterOptions};
use dbaas_client::*;

const REPLICAS: usize = 3;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A bridge in this namespace (`<prefix>.1`) and one namespace per replica (`<prefix>.1i`).
struct Net {
    bridge: String,
    prefix: String,
    namespaces: Vec<String>,
}

impl Net {
    fn new(n: usize) -> Self {
        let id = std::process::id() % 100_000;
        let prefix = format!("10.{}.{}", 200 + id % 50, (id / 50) % 250);
        let bridge = format!("dbr{id}");
        ip(&["link", "add", &bridge, "type", "bridge"]);
        let mut net = Self { bridge: bridge.clone(), prefix, namespaces: Vec::new() };
        ip(&["addr", "add", &format!("{}.1/24", net.prefix), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..n {
            let ns = format!("dbaas{id}r{i}");
            ip(&["netns", "add", &ns]);
            net.namespaces.push(ns.clone());
            let host_end = format!("v{id}h{i}");
            ip(&["link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            ip(&["link", "set", &host_end, "master", &bridge]);
            ip(&["link", "set", &host_end, "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", net.addr(i)), "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 11 + i)
    }

    /// Takes replica `i`'s link down (`up = false`) or up again.
    fn link(&self, i: usize, up: bool) {
        ip(&["-n", &self.namespaces[i], "link", "set", "eth0", if up { "up" } else { "down" }]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
    }
}

/// The API binary built beside the provider (the workspace's test build builds both).
fn api_bin() -> PathBuf {
    let bin = Path::new(common::PROVIDER).with_file_name("dbaas-api");
    assert!(bin.exists(), "{} is missing: build the workspace (`cargo test --workspace`)", bin.display());
    bin
}

struct Replica {
    child: Option<Child>,
    log: PathBuf,
}

struct Fleet {
    net: Net,
    dir: PathBuf,
    state_url: String,
    key: String,
    replicas: Vec<Replica>,
}

impl Fleet {
    fn start(&mut self, i: usize) {
        let log = self.dir.join(format!("replica-{i}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.net.namespaces[i]])
            .arg(api_bin())
            .arg("serve")
            .env("DATABASE_URL", &self.state_url)
            .env("DBAAS_MASTER_KEY", &self.key)
            .env("DBAAS_LISTEN", format!("{}:8080", self.net.addr(i)))
            .env("DBAAS_WORKERS", "4")
            .env("DBAAS_OP_LEASE_MS", "3000")
            .env("DBAAS_POLL_INTERVAL_MS", "300")
            .env("DBAAS_REAPER_INTERVAL_MS", "500")
            .env("DBAAS_TENANT_CONCURRENCY", "8")
            // Slow steps (test hooks, in the workspace's test build): operations are still
            // running when a replica is killed or cut off.
            .env("DBAAS_TEST_STEP_DELAY_MS", "250")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        if i < self.replicas.len() {
            self.replicas[i] = Replica { child: Some(child), log };
        } else {
            self.replicas.push(Replica { child: Some(child), log });
        }
    }

    async fn ready(&self, i: usize) {
        let url = format!("http://{}:8080/readyz", self.net.addr(i));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "replica {i} not ready:\n{}", self.log(i));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&mut self, i: usize, sig: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.replicas[i].child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        child.wait().unwrap()
    }

    /// Replica `i`'s log, without terminal colours.
    fn log(&self, i: usize) -> String {
        let raw = std::fs::read_to_string(&self.replicas[i].log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The worker id replica `i` claims operations under (from its start-up line).
    fn worker_id(&self, i: usize) -> String {
        let log = self.log(i);
        let line = log.lines().rev().find(|l| l.contains("dbaas-api listening")).unwrap();
        let at = line.find("worker=").unwrap() + "worker=".len();
        line[at..].split_whitespace().next().unwrap().trim_matches('"').to_string()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            if let Some(mut c) = r.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

struct Haproxy {
    child: Child,
    port: u16,
    stats: u16,
}

impl Haproxy {
    fn start(dir: &Path, net: &Net) -> Self {
        let (port, stats) = (free_port().unwrap(), free_port().unwrap());
        let servers: String = (0..REPLICAS)
            .map(|i| format!("    server r{i} {}:8080 check inter 300ms fall 1 rise 2\n", net.addr(i)))
            .collect();
        // Retries only where the request never reached a replica (connection refused while it
        // restarts): safe for POSTs too. One connection per request: a draining replica's
        // closed keep-alive connection is never reused.
        let config = format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 120s\n    timeout server 120s\n\
             \x20   retries 5\n    option redispatch 1\n    retry-on conn-failure empty-response\n    option http-server-close\n\
             frontend api\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\
             backend replicas\n    balance roundrobin\n    option httpchk GET /readyz\n{servers}\
             listen stats\n    bind 127.0.0.1:{stats}\n    stats enable\n    stats uri /stats\n"
        );
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let check = Command::new("/usr/sbin/haproxy").arg("-c").arg("-f").arg(&cfg).output().unwrap();
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
        let child = Command::new("/usr/sbin/haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
            .spawn()
            .unwrap();
        Self { child, port, stats }
    }

    /// The frontend's answers by class and the backend's connection and response errors.
    async fn counters(&self) -> (u64, u64, u64) {
        let csv =
            reqwest::get(format!("http://127.0.0.1:{}/stats;csv", self.stats)).await.unwrap().text().await.unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().trim_start_matches("# ").split(',').collect();
        let col = |row: &str, name: &str| -> u64 {
            let i = header.iter().position(|h| *h == name).unwrap();
            row.split(',').nth(i).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        let front = csv.lines().find(|l| l.starts_with("api,FRONTEND")).unwrap();
        let back = csv.lines().find(|l| l.starts_with("replicas,BACKEND")).unwrap();
        (col(front, "hrsp_5xx"), col(front, "hrsp_2xx"), col(back, "eresp"))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn count(db: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

/// Waits until every operation has ended.
async fn settled(db: &sqlx::PgPool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while count(db, "SELECT count(*) FROM operations WHERE status IN ('queued', 'running')").await > 0 {
        if Instant::now() > deadline {
            let open: Vec<serde_json::Value> = sqlx::query_scalar(
                "SELECT json_build_object('kind', kind, 'status', status, 'locked_by', locked_by, 'attempts', attempts, \
                 'error', error_message) FROM operations WHERE status IN ('queued', 'running')",
            )
            .fetch_all(db)
            .await
            .unwrap();
            panic!("operations still open after 3 minutes: {open:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Creates databases named `<prefix>-<n>` until one of their operations runs on `worker`
/// (claims go to whichever replica is free first); returns that operation and how many
/// databases were asked for.
async fn create_until_running_on(admin: &Client, db: &sqlx::PgPool, worker: &str, prefix: &str) -> (uuid::Uuid, usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut created = 0;
    loop {
        admin
            .create_database(&CreateDatabase {
                name: format!("{prefix}-{created}"),
                tenant: Some("team-r".into()),
                instance: Some("main".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        created += 1;
        for _ in 0..10 {
            let id: Option<uuid::Uuid> =
                sqlx::query_scalar("SELECT id FROM operations WHERE status = 'running' AND locked_by = $1 LIMIT 1")
                    .bind(worker)
                    .fetch_optional(db)
                    .await
                    .unwrap();
            if let Some(id) = id {
                return (id, created);
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        assert!(Instant::now() < deadline && created < 40, "no operation ran on {worker}");
    }
}

const EXACTLY_ONCE: &str = "SELECT count(*) FROM (SELECT operation_id FROM operation_logs WHERE message = 'succeeded' \
     GROUP BY operation_id HAVING count(*) > 1) x";

#[tokio::test(flavor = "multi_thread")]
async fn replicas_behind_haproxy_restart_die_and_lose_the_network() {
    let tmp = dbaas_testkit::tempdir();
    let dir = tmp.path().to_path_buf();
    let net = Net::new(REPLICAS);
    let gateway = net.gateway();
    let network = format!("{}.0/24", net.prefix);
    let listen = Some((gateway.clone(), network));
    let state = Cluster::start(
        &dir.join("state"),
        &ClusterOptions { throwaway: true, also_listen: listen.clone(), ..Default::default() },
    )
    .unwrap();
    let target = Cluster::start(
        &dir.join("target"),
        &ClusterOptions { tls: true, throwaway: true, also_listen: listen, ..Default::default() },
    )
    .unwrap();
    let root = sqlx::PgPool::connect(&state.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE dbaas").execute(&root).await.unwrap();
    let local_url = state.url("dbaas");
    let migrate = Command::new(api_bin()).arg("migrate").env("DATABASE_URL", &local_url).output().unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    let db = sqlx::PgPool::connect(&local_url).await.unwrap();
    let token = dbaas_api::store::tokens::issue(&db, None, "replica test", None).await.unwrap().secret;

    let mut fleet = Fleet {
        state_url: local_url.replace("127.0.0.1", &gateway),
        key: dbaas_api::crypto::MasterKey::generate_base64(),
        dir: dir.clone(),
        net,
        replicas: Vec::new(),
    };
    for i in 0..REPLICAS {
        fleet.start(i);
    }
    for i in 0..REPLICAS {
        fleet.ready(i).await;
    }
    let lb = Haproxy::start(&dir, &fleet.net);
    let endpoint = format!("http://127.0.0.1:{}", lb.port);
    let admin = Client::new(&endpoint, &token).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.list_instances().await.is_err() {
        assert!(Instant::now() < deadline, "HAProxy does not reach the replicas");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin
        .create_instance(&CreateInstance {
            // Reached at the gateway from the replicas' namespaces (its certificate names it).
            host: gateway.clone(),
            max_databases: 200,
            ..dbaas_api::dev::instance_request(&target, "main")
        })
        .await
        .unwrap();

    // 1. A rolling restart of every replica during an apply of 50 databases.
    install_provider(&dir);
    let wd = dir.join("tf");
    std::fs::create_dir_all(&wd).unwrap();
    std::fs::write(
        wd.join("main.tf"),
        format!(
            "terraform {{\n  required_providers {{\n    dbaas = {{ source = \"dbaas/dbaas\", version = \"{}\" }}\n  }}\n}}\n\
             resource \"dbaas_tenant\" \"t\" {{\n  name = \"team-r\"\n  max_databases = 100\n}}\n\
             resource \"dbaas_database\" \"db\" {{\n  count = 50\n  tenant = dbaas_tenant.t.name\n  name = \"db-${{count.index}}\"\n  instance = \"main\"\n}}\n",
            common::VERSION
        ),
    )
    .unwrap();
    let env = [("DBAAS_ENDPOINT", endpoint.as_str()), ("DBAAS_TOKEN", token.as_str())];
    let init = terraform(&dir, &wd, &["init", "-input=false"], &env).output().unwrap();
    assert!(init.status.success(), "{}", text(&init));
    let apply = terraform(&dir, &wd, &["apply", "-auto-approve", "-input=false", "-parallelism=10"], &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (errors_before, _, _) = lb.counters().await;
    for i in 0..REPLICAS {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let status = fleet.signal(i, nix::sys::signal::Signal::SIGTERM);
        assert!(status.success(), "replica {i} did not stop cleanly on SIGTERM ({status:?}):\n{}", fleet.log(i));
        fleet.start(i);
        fleet.ready(i).await;
    }
    let out = tokio::task::spawn_blocking(move || apply.wait_with_output().unwrap()).await.unwrap();
    assert!(out.status.success(), "apply during the rolling restart failed:\n{}", text(&out));
    settled(&db).await;
    let (errors, answered, _) = lb.counters().await;
    assert_eq!(errors - errors_before, 0, "requests failed during the rolling restart");
    assert!(answered > 100);
    assert_eq!(count(&db, "SELECT count(*) FROM operations WHERE status <> 'succeeded'").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM databases WHERE status = 'ready'").await, 50);
    assert_eq!(count(&db, EXACTLY_ONCE).await, 0);

    // 2. A replica SIGKILLed mid-operation: another resumes its operations.
    let worker = fleet.worker_id(0);
    let (victim, killed_batch) = create_until_running_on(&admin, &db, &worker, "k").await;
    fleet.signal(0, nix::sys::signal::Signal::SIGKILL);
    settled(&db).await;
    let op = admin.get_operation(victim).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert!(op.attempts >= 2, "the killed replica's operation was not resumed: {op:?}");
    fleet.start(0);
    fleet.ready(0).await;

    // 3. A replica cut off from the state database: its lease runs out, another replica
    //    finishes its operation, once.
    let worker = fleet.worker_id(1);
    let (victim, cut_batch) = create_until_running_on(&admin, &db, &worker, "n").await;
    fleet.net.link(1, false);
    settled(&db).await;
    let op = admin.get_operation(victim).await.unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    assert!(op.attempts >= 2, "{op:?}");
    fleet.net.link(1, true);
    // Back on the network, the cut-off replica records nothing more for it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(count(&db, EXACTLY_ONCE).await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM operations WHERE status <> 'succeeded'").await, 0);
    let ready = count(&db, "SELECT count(*) FROM databases WHERE status = 'ready'").await;
    assert_eq!(ready as usize, 50 + killed_batch + cut_batch);
    // Its attempt ended without recording anything: stopped by its watchdog (no heartbeat
    // within the lease), or failing on the lost network and unable to record that (the state
    // database unreachable, or the claim taken by then).
    let ended = [
        "no heartbeat succeeded within the lease",
        "claim lost to another worker",
        "re-queueing failed",
        "recording the outcome failed",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = fleet.log(1);
        if ended.iter().any(|m| log.contains(m)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cut-off replica never stopped its attempt:\n{}",
            log.lines().filter(|l| !l.contains("slow_acquire")).rev().take(40).collect::<Vec<_>>().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(lb);
    drop(fleet);
    drop((state, target));
}
