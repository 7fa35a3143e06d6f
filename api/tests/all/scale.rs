//! Reads that scale: GET serves the background reconciler's drift without touching the
//! instance, live checks are on request and rate-limited per tenant, one reconciler pass
//! covers every database of an instance, lists page by cursor, and many databases are read
//! whole (drift, credentials) in one call.
#![allow(clippy::unwrap_used)]

use crate::common;

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

    // `tenant=`: an admin's names any tenant (looked up by the list itself), a tenant's only
    // its own; an unknown or another tenant's is 404, an existing one without databases an
    // empty list.
    let by_name: List<Database> = h.admin.list_page("/v1/databases?tenant=team-a&limit=5").await.unwrap();
    assert_eq!(by_name.items.len(), 5);
    let next = by_name.next_cursor.unwrap();
    let more: List<Database> =
        h.admin.list_page(&format!("/v1/databases?tenant=team-a&limit=5&cursor={next}")).await.unwrap();
    assert_eq!(more.items[0].name, "db05");
    assert_eq!(a.list_page::<Database>("/v1/databases?tenant=team-a").await.unwrap().items.len(), 12);
    h.tenant("team-empty").await;
    assert!(h.admin.list_page::<Database>("/v1/databases?tenant=team-empty").await.unwrap().items.is_empty());
    for (client, path) in [(&h.admin, "/v1/databases?tenant=nope"), (&a, "/v1/databases?tenant=team-empty")] {
        let e = client.list_page::<Database>(path).await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{path}");
    }
}

/// Requests served so far on `route` (from the service's own counters).
async fn requests_on(h: &Harness, route: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", h.endpoint())).await.unwrap().text().await.unwrap();
    let prefix = format!("dbaas_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"200\"}} ");
    text.lines().filter_map(|l| l.strip_prefix(&prefix)).map(|v| v.parse::<u64>().unwrap()).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn many_databases_are_read_whole_in_one_call() {
    let h = Harness::in_process().await;
    let a = h.tenant("team-a").await;
    let b = h.tenant("team-b").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(h.ready_database(&a, db_req(&format!("db{i}"))).await.id);
    }
    let theirs = h.ready_database(&b, db_req("db0")).await.id;
    let since = chrono::Utc::now();
    let drift = Harness::reconciled_drift(&a, ids[0], since).await;
    let lease = a.create_lease(ids[1], &CreateLease { access: Access::Read, ttl: "1h".into() }).await.unwrap();
    let op = a.delete_database(ids[3], false).await.unwrap().operation.unwrap();
    a.wait_operation(op.id, std::time::Duration::from_secs(60)).await.unwrap();

    // One call: the records, their stored drift and their credentials, exactly as the
    // single reads give them. Another tenant's and the deleted database are left out.
    let list = |ids: &[uuid::Uuid]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let page: List<Database> = a
        .list_page(&format!("/v1/databases?ids={}&include=drift,credentials", list(&[ids[0], ids[1], ids[3], theirs])))
        .await
        .unwrap();
    assert_eq!(page.items.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[0], ids[1]]);
    for d in &page.items {
        let single = a.get_database(d.id).await.unwrap();
        assert_eq!(d.drift, single.drift, "{}", d.name);
        assert_eq!(d.credentials.as_ref().unwrap(), &a.list_credentials(d.id).await.unwrap(), "{}", d.name);
    }
    assert_eq!(page.items[0].drift.as_ref().unwrap().checked_at, drift.checked_at);
    let leased = page.items[1].credentials.as_ref().unwrap();
    assert_eq!(leased.len(), 4);
    assert!(leased.iter().any(|c| c.id == lease.credential.id && !c.password.is_empty()));
    // Without include, neither is there; the admin sees the deleted one when asking for it.
    let plain: List<Database> = a.list_page(&format!("/v1/databases?ids={}", ids[0])).await.unwrap();
    assert!(plain.items[0].credentials.is_none() && plain.items[0].drift.is_none());
    let deleted: List<Database> =
        h.admin.list_page(&format!("/v1/databases?ids={}&include_deleted=true", ids[3])).await.unwrap();
    assert_eq!(deleted.items[0].status, DatabaseStatus::Deleted);

    // Bad input names its parameter.
    let many = list(&(0..101).map(|_| uuid::Uuid::new_v4()).collect::<Vec<_>>());
    for (q, field, code) in [
        ("ids=nope".to_string(), "ids", "invalid_id"),
        (format!("ids={many}"), "ids", "too_many"),
        ("include=secrets".to_string(), "include", "invalid_include"),
        ("include=credentials&limit=101".to_string(), "limit", "out_of_range"),
    ] {
        let e = a.list_page::<Database>(&format!("/v1/databases?{q}")).await.unwrap_err();
        let p = e.problem().unwrap();
        assert_eq!((p.status, p.errors[0].field.as_str(), p.errors[0].code.as_str()), (422, field, code), "{q}: {p:?}");
    }

    // The client's whole reads made at once share requests, and each gets its own answer:
    // its database with credentials, or None for one that is deleted or another tenant's.
    let before = requests_on(&h, "/v1/databases").await;
    let wanted: Vec<uuid::Uuid> = (0..50).map(|i| [ids[0], ids[1], ids[2], ids[3], theirs][i % 5]).collect();
    let answers = futures_util::future::join_all(wanted.iter().map(|id| a.read_database(*id))).await;
    let sent = requests_on(&h, "/v1/databases").await - before;
    for (id, answer) in wanted.iter().zip(answers) {
        match answer.unwrap() {
            Some(d) => {
                assert!(ids[..3].contains(id) && d.id == *id);
                assert_eq!(d.credentials.unwrap().len(), if *id == ids[1] { 4 } else { 3 });
            }
            None => assert!(*id == ids[3] || *id == theirs, "{id} read as gone"),
        }
    }
    assert!(sent < 10, "50 concurrent reads took {sent} requests");
    // Alone, a read is still whole.
    assert_eq!(a.read_database(ids[2]).await.unwrap().unwrap().credentials.unwrap().len(), 3);

    // Refreshes: after SNAPSHOT_AFTER of them for a tenant, its databases are read in pages
    // in the background, and later refreshes take their entry (once each) without a request.
    let refresher = a.with_token(a.token());
    let n = dbaas_client::refresh::SNAPSHOT_AFTER;
    for i in 0..n - 1 {
        refresher.refresh_database("team-a", ids[i % 3]).await.unwrap().unwrap();
    }
    // The last of them starts the snapshot (one page, read in the background) beside its own
    // read: two requests. Measuring a refresh while the page is being counted would hide
    // where that refresh came from, so wait for both first.
    let before_last = requests_on(&h, "/v1/databases").await;
    refresher.refresh_database("team-a", ids[(n - 1) % 3]).await.unwrap().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while requests_on(&h, "/v1/databases").await < before_last + 2 {
        assert!(std::time::Instant::now() < deadline, "the snapshot was never read");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The page is counted just before the client has it: a refresh in that instant still
    // asks the API; the next one takes the snapshot's entry.
    loop {
        let before = requests_on(&h, "/v1/databases").await;
        let d = refresher.refresh_database("team-a", ids[0]).await.unwrap().unwrap();
        assert_eq!(d.credentials.unwrap().len(), 3);
        if requests_on(&h, "/v1/databases").await == before {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no refresh came from the snapshot");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A read after a change never uses the snapshot (and leaves ids[2]'s entry there).
    let before = requests_on(&h, "/v1/databases").await;
    refresher.read_database(ids[2]).await.unwrap().unwrap();
    assert_eq!(requests_on(&h, "/v1/databases").await, before + 1);
    let before = requests_on(&h, "/v1/databases").await;
    let leased = refresher.refresh_database("team-a", ids[1]).await.unwrap().unwrap();
    assert_eq!(leased.credentials.unwrap().len(), 4);
    refresher.refresh_database("team-a", ids[2]).await.unwrap().unwrap();
    assert_eq!(requests_on(&h, "/v1/databases").await, before, "entries in the snapshot were read again");
    // Each entry serves one refresh; the deleted and the other tenant's are not entries.
    assert!(refresher.refresh_database("team-a", ids[3]).await.unwrap().is_none());
    refresher.refresh_database("team-a", ids[1]).await.unwrap().unwrap();
    assert_eq!(requests_on(&h, "/v1/databases").await, before + 2);
}
