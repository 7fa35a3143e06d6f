//! Metrics of instances and databases, collected in the service under postgres_exporter's
//! names: the discovery targets, one instance's series with tenant/database labels, a
//! tenant's own series only, the JSON summary (size, connections, transactions/s, dead rows,
//! last backup), the service's gauges, and an instance that stops answering (pg_up 0, and
//! the scrape still answers at once).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use dbaas_client::*;

async fn text(h: &Harness, token: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::new().get(format!("{}{path}", h.endpoint())).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_and_databases_are_observable_per_tenant() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let b = h.tenant("team-b").await;
    let orders = h.ready_database(&a, db_req("orders")).await;
    let other = h.ready_database(&b, db_req("other")).await;
    let mut c = connect_as(&a.get_credential(orders.id, Access::Admin).await.unwrap()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id int) WITH (autovacuum_enabled = false); \
         INSERT INTO t SELECT generate_series(1, 5000); DELETE FROM t WHERE id > 1000;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    drop(c);

    // The summary fills in within a few collections.
    wait_until("the database's metrics are collected", Duration::from_secs(60), || async {
        let m = a.database_metrics(orders.id).await.unwrap();
        m.max_dead_tuple_ratio.is_some_and(|r| r > 0.7) && m.transactions_per_second.is_some()
    })
    .await;
    let m = a.database_metrics(orders.id).await.unwrap();
    assert!(m.size_bytes.unwrap() > 1_000_000, "{m:?}");
    assert!(m.commits.unwrap() > 0 && m.collected_at.is_some());
    assert_eq!(m.dead_tuples, Some(4000));
    assert_eq!(problem_status(b.database_metrics(orders.id).await), 404);

    // Discovery: every instance, scraped from this API; admin only.
    let targets = h.admin.prometheus_targets().await.unwrap();
    assert_eq!(targets.len(), 1);
    let t = &targets[0];
    assert_eq!(t.labels["instance"], "main");
    assert_eq!(t.labels["environment"], "sandbox");
    assert_eq!(t.labels["__metrics_path__"], "/v1/prometheus/instances/main/metrics");
    assert_eq!(t.targets, vec![h.endpoint().trim_start_matches("http://").to_string()]);
    assert_eq!(problem_status(a.prometheus_targets().await), 403);

    // One instance's series: postgres_exporter names, the service's labels.
    let (status, body) = text(&h, &h.admin_token, "/v1/prometheus/instances/main/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "pg_up 1",
        "# TYPE pg_stat_database_xact_commit counter",
        "pg_settings_max_connections ",
        "pg_stat_database_numbackends{tenant=\"team-a\",database=\"orders\",datname=\"team-a_orders\"}",
        "pg_stat_database_numbackends{tenant=\"\",database=\"\",datname=\"postgres\"}",
        "pg_stat_user_tables_n_dead_tup{tenant=\"team-a\",database=\"orders\",datname=\"team-a_orders\",schemaname=\"public\",relname=\"t\"} 4000",
        "pg_database_wraparound_age_datfrozenxid_seconds{",
        "pg_stat_bgwriter_checkpoints_req_total ",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    let (status, _) = text(&h, a.token(), "/v1/prometheus/instances/main/metrics").await;
    assert_eq!(status, 403);

    // A tenant scrapes its own databases only.
    let (_, mine) = text(&h, a.token(), "/v1/prometheus/metrics").await;
    assert!(mine.contains("database=\"orders\",environment=\"sandbox\",instance=\"main\""), "{mine}");
    assert!(!mine.contains("team-b") && !mine.contains("datname=\"postgres\""), "{mine}");
    let (_, theirs) = text(&h, b.token(), "/v1/prometheus/metrics").await;
    assert!(theirs.contains("database=\"other\"") && !theirs.contains("team-a"), "{theirs}");
    let _ = other;

    // The service's own gauges, and the data disk of a host of managed instances.
    let (_hostdir, _) = common::hosts::local_host(&h, "disk-host", [26400, 26409]).await;
    wait_until("the host's disk is read", Duration::from_secs(30), || async {
        text(&h, "", "/metrics").await.1.contains("dbaas_host_data_disk_available_bytes{dbaas_host=\"disk-host\"}")
    })
    .await;
    let (_, service) = text(&h, "", "/metrics").await;
    assert!(service.contains("dbaas_workers ") && service.contains("dbaas_instance_health{dbaas_instance=\"main\""));
    assert!(service.contains("dbaas_workers_busy 0"), "{service}");
    assert!(service.contains("dbaas_host_up{dbaas_host=\"disk-host\"} 1"), "{service}");
    let size: f64 = service
        .lines()
        .find_map(|l| l.strip_prefix("dbaas_host_data_disk_size_bytes{dbaas_host=\"disk-host\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 1e8, "{size}");

    // The instance stops: pg_up 0 after the next collection; scrapes still answer at once.
    h.target_pg.stop().unwrap();
    wait_until("pg_up goes to 0", Duration::from_secs(60), || async {
        text(&h, &h.admin_token, "/v1/prometheus/instances/main/metrics").await.1.contains("pg_up 0")
    })
    .await;
    let t0 = Instant::now();
    let (status, _) = text(&h, &h.admin_token, "/v1/prometheus/instances/main/metrics").await;
    assert_eq!(status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2), "a down instance slowed the scrape: {:?}", t0.elapsed());
}

fn problem_status<T: std::fmt::Debug>(r: Result<T, ClientError>) -> u16 {
    r.unwrap_err().status().unwrap()
}
