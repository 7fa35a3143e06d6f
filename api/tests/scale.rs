//! Reads that scale: GET serves the background reconciler's drift without touching the
//! instance, live checks are on request and rate-limited per tenant, one reconciler pass
//! covers every database of an instance, and lists page by cursor.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use dbaas_client::*;

/// Sessions ever opened on the target cluster (all databases), read on `c`.
async fn sessions(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT sum(sessions)::bigint FROM pg_stat_database").fetch_one(c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn get_touches_no_instance_and_fresh_checks_are_limited() {
    // No background pass and no metrics collection during the test: every session on the
    // target comes from the requests themselves.
    let env = vec![
        ("DBAAS_DRIFT_INTERVAL_MS".to_string(), "3600000".to_string()),
        ("DBAAS_METRICS_INTERVAL_MS".to_string(), "3600000".to_string()),
    ];
    let h = Harness::start_with(ApiOptions { env, ..Default::default() }).await;
    let a = h.tenant("team-a").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(h.ready_database(&a, db_req(&format!("db{i}"))).await.id);
    }
    let mut watch = h.target_db("postgres").await;
    let before = sessions(&mut watch).await;
    for _ in 0..20 {
        for id in &ids {
            let d = a.get_database(*id).await.unwrap();
            assert!(d.drift.is_none(), "never compared yet: no drift is shown, {:?}", d.drift);
        }
        a.list_databases("").await.unwrap();
    }
    assert_eq!(sessions(&mut watch).await - before, 0, "60 GETs and 20 lists opened sessions on the instance");

    // A live check connects (maintenance database, then the database as its admin role).
    let fresh = a.get_database_fresh(ids[0]).await.unwrap().drift.unwrap();
    assert!(fresh.is_clean() && fresh.checked_at.is_some(), "{fresh:?}");
    assert!(sessions(&mut watch).await - before >= 2);
    // Its result is stored and served to plain GETs.
    let stored = a.get_database(ids[0]).await.unwrap().drift.unwrap();
    assert_eq!(stored.checked_at, fresh.checked_at);

    // 30 live checks a minute per tenant, whoever asks (the admin counts against the
    // database's tenant): then 429 with Retry-After, and plain GETs still answer.
    for _ in 1..dbaas_api::catalog::reconcile::FRESH_PER_MINUTE {
        h.admin.get_database_fresh(ids[1]).await.unwrap();
    }
    let r = reqwest::Client::new()
        .get(format!("{}/v1/databases/{}?fresh=true", h.endpoint(), ids[2]))
        .bearer_auth(a.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    let p: Problem = r.json().await.unwrap();
    assert_eq!(p.code, "rate_limited", "{p:?}");
    a.get_database(ids[2]).await.unwrap();
    // Another tenant has its own allowance.
    let b = h.tenant("team-b").await;
    let other = h.ready_database(&b, db_req("db0")).await;
    b.get_database_fresh(other.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn one_pass_covers_an_instance_and_lists_page_by_cursor() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let mut names = BTreeSet::new();
    for i in 0..12 {
        let d = h.ready_database(&a, db_req(&format!("db{i:02}"))).await;
        names.insert(d.name);
    }
    // One pass compares every database of the instance: they share its time.
    let since = chrono::Utc::now();
    let all = a.list_databases("").await.unwrap();
    let mut times = BTreeSet::new();
    for d in &all {
        let drift = Harness::reconciled_drift(&a, d.id, since).await;
        assert!(drift.is_clean(), "{}: {drift:?}", d.name);
        times.insert(drift.checked_at.unwrap());
    }
    assert!(times.len() <= 2, "12 databases took {} passes: {times:?}", times.len());

    // Pages of 5: 5, 5, 2, in order, nothing repeated or skipped.
    let mut seen = Vec::new();
    let mut path = "/v1/databases?limit=5".to_string();
    let mut pages = 0;
    loop {
        let page: List<Database> = a.list_page(&path).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 5);
        seen.extend(page.items.into_iter().map(|d| d.name));
        match page.next_cursor {
            Some(c) => path = format!("/v1/databases?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, names.iter().cloned().collect::<Vec<_>>());
    // The client follows cursors: the whole list in one call.
    assert_eq!(a.list_databases("").await.unwrap().len(), 12);
    // Search by a part of the name, across pages; LIKE's wildcards are literal.
    let found: List<Database> = a.list_page("/v1/databases?search=1&limit=2").await.unwrap();
    let next = found.next_cursor.clone().unwrap();
    let rest: List<Database> = a.list_page(&format!("/v1/databases?search=1&limit=2&cursor={next}")).await.unwrap();
    let hits: Vec<_> = found.items.iter().chain(&rest.items).map(|d| d.name.as_str()).collect();
    assert_eq!(hits, ["db01", "db10", "db11"]);
    let upper: List<Database> = a.list_page("/v1/databases?search=DB1").await.unwrap();
    assert_eq!(upper.items.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["db10", "db11"]);
    for wild in ["%25", "_", "db_1"] {
        let none: List<Database> = a.list_page(&format!("/v1/databases?search={wild}")).await.unwrap();
        assert!(none.items.is_empty(), "{wild}: {:?}", none.items.iter().map(|d| &d.name).collect::<Vec<_>>());
    }
    let e = a.list_page::<Database>(&format!("/v1/databases?search={}", "x".repeat(64))).await.unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "search");

    // Operations page newest first by their order of enqueueing.
    let first: List<Operation> = a.list_page("/v1/operations?limit=4").await.unwrap();
    let next = first.next_cursor.clone().unwrap();
    let second: List<Operation> = a.list_page(&format!("/v1/operations?limit=4&cursor={next}")).await.unwrap();
    assert_eq!(first.items.len(), 4);
    assert!(first.items.last().unwrap().created_at >= second.items[0].created_at);
    let ids: BTreeSet<_> = first.items.iter().chain(&second.items).map(|o| o.id).collect();
    assert_eq!(ids.len(), 8, "pages overlap");

    // Bad paging is a field error.
    for (q, field) in [("limit=0", "limit"), ("limit=1001", "limit"), ("cursor=nope", "cursor")] {
        let e = a.list_page::<Database>(&format!("/v1/databases?{q}")).await.unwrap_err();
        let p = e.problem().unwrap();
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, field), "{q}: {p:?}");
    }
    // Every list takes the same parameters.
    for path in ["/v1/tenants", "/v1/instances", "/v1/tokens", "/v1/backup-policies"] {
        let page: List<serde_json::Value> = h.admin.list_page(&format!("{path}?limit=1")).await.unwrap();
        assert!(page.items.len() <= 1, "{path}");
    }
    let id = all[0].id;
    for path in ["credentials", "schedules", "backups"] {
        let page: List<serde_json::Value> = a.list_page(&format!("/v1/databases/{id}/{path}?limit=1")).await.unwrap();
        assert!(page.items.len() <= 1, "{path}");
    }
    let creds: List<serde_json::Value> = a.list_page(&format!("/v1/databases/{id}/credentials?limit=2")).await.unwrap();
    let rest: List<serde_json::Value> = a
        .list_page(&format!("/v1/databases/{id}/credentials?limit=2&cursor={}", creds.next_cursor.unwrap()))
        .await
        .unwrap();
    assert_eq!((creds.items.len(), rest.items.len(), rest.next_cursor), (2, 1, None));
}
