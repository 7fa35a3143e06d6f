//! The drift reconciler: compares every instance's catalog with the records in the
//! background, so `GET /v1/databases/{id}` (every `terraform plan` refresh) reads a stored
//! result instead of connecting to the instance.
//!
//! Every replica runs the loop; an instance is checked by one replica per interval (a
//! session advisory lock on the instance in the state database, then a freshness check by
//! the state database's clock, as the metrics collector does). A pass over an instance is one
//! connection to its maintenance database and two catalog queries covering all its databases
//! and roles, plus in-database checks (as each database's admin role) for at most
//! [`INSIDE_PER_PASS`] databases, the least recently checked first: the in-database part of a
//! drift is as old as `deep_checked_at` says, spread over passes instead of a storm.
//!
//! A result never outlives a change: when an operation on a database ends its stored drift
//! is deleted (in the operation's outcome transaction), and a pass stores a result only for
//! databases no operation touched since the pass read the catalog.

use crate::catalog::conn::InstanceTarget;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dbaas_client::{Drift, OperationKind};
use sqlx::types::Json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::conn::{InstanceRow, MAINTENANCE_DB};
use super::drift::{self, CatalogFacts};
use super::record::{self, CredentialRow, DatabaseRow, DATABASE_COLUMNS, DATABASE_FROM};
use crate::state::AppState;
use dbaas_engine::periodic::{each_locked, fresh};

/// Databases whose inside (extensions, foreign objects) one pass over an instance reads.
pub const INSIDE_PER_PASS: usize = 5;
const PASS_TIMEOUT: Duration = Duration::from_secs(30);
/// Live checks (`?fresh=true`) a tenant may ask for per minute, across replicas.
pub const FRESH_PER_MINUTE: i32 = 30;

pub fn spawn(state: AppState, shutdown: CancellationToken) {
    let tick = state.engine.drift_interval / 3;
    dbaas_engine::periodic::every(
        state,
        shutdown,
        tick,
        "drift reconciler",
        |s| async move { pass(&s).await.map(|_| ()) },
    );
}

/// One pass: checks every instance whose last check is older than the interval and that no
/// other replica is checking. Returns how many were checked here.
pub async fn pass(state: &AppState) -> Result<usize, sqlx::Error> {
    let interval_ms = state.engine.drift_interval.as_millis() as i64;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT i.id FROM instances i LEFT JOIN drift_passes p ON p.instance_id = i.id \
         WHERE i.status = 'ready' \
           AND (p.collected_at IS NULL OR p.collected_at < now() - make_interval(secs => $1::float8 / 1000)) \
         ORDER BY p.collected_at NULLS FIRST LIMIT 50",
    )
    .bind(interval_ms)
    .fetch_all(&state.db)
    .await?;
    each_locked(state, "dbaas:drift", due, |id| check_locked(state, id, interval_ms)).await
}

async fn check_locked(state: &AppState, id: Uuid, interval_ms: i64) -> Result<bool, sqlx::Error> {
    if fresh(state, "drift_passes", "instance_id", id, interval_ms).await? {
        return Ok(false);
    }
    let Some(inst) = record::load_instance(&state.db, id).await? else { return Ok(false) };
    let started = std::time::Instant::now();
    let (error, databases) = match tokio::time::timeout(PASS_TIMEOUT, check_instance(state, &inst)).await {
        Ok(Ok(n)) => (None, n),
        Ok(Err(e)) => (Some(e), 0),
        Err(_) => (Some(format!("no answer within {PASS_TIMEOUT:?}")), 0),
    };
    if let Some(e) = &error {
        tracing::debug!(instance = %inst.name, error = %e, "drift not checked");
    }
    sqlx::query(
        "INSERT INTO drift_passes (instance_id, collected_at, error, duration_ms, databases) \
         VALUES ($1, now(), $2, $3, $4) \
         ON CONFLICT (instance_id) DO UPDATE SET collected_at = now(), error = $2, duration_ms = $3, databases = $4",
    )
    .bind(id)
    .bind(&error)
    .bind(started.elapsed().as_millis() as i64)
    .bind(databases as i32)
    .execute(&state.db)
    .await?;
    Ok(true)
}

/// The ready databases of an instance with their credentials and when their inside was last
/// read: three queries, whatever their number.
async fn records(
    state: &AppState,
    inst: &InstanceRow,
) -> Result<Vec<(DatabaseRow, Vec<CredentialRow>, Option<DateTime<Utc>>)>, sqlx::Error> {
    let dbs: Vec<DatabaseRow> = sqlx::query_as(&format!(
        "SELECT {DATABASE_COLUMNS} FROM {DATABASE_FROM} WHERE d.instance_id = $1 AND d.status = 'ready' ORDER BY d.id"
    ))
    .bind(inst.id)
    .fetch_all(&state.db)
    .await?;
    let ids: Vec<Uuid> = dbs.iter().map(|d| d.id).collect();
    let creds = record::credentials_of(&state.db, &ids).await?;
    let inside_at: Vec<(Uuid, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT database_id, deep_checked_at FROM drift_checks WHERE database_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&state.db)
            .await?;
    Ok(dbs
        .into_iter()
        .map(|d| {
            let c = creds.iter().filter(|c| c.database_id == d.id).cloned().collect();
            let at = inside_at.iter().find(|(id, _)| *id == d.id).and_then(|(_, at)| *at);
            (d, c, at)
        })
        .collect())
}

/// Returns how many databases were compared.
async fn check_instance(state: &AppState, inst: &InstanceRow) -> Result<usize, String> {
    let started: DateTime<Utc> =
        sqlx::query_scalar("SELECT now()").fetch_one(&state.db).await.map_err(|e| e.to_string())?;
    let dbs = records(state, inst).await.map_err(|e| e.to_string())?;
    if dbs.is_empty() {
        return Ok(0);
    }
    let mut claims = Vec::with_capacity(dbs.len());
    for (db, creds, _) in &dbs {
        match drift::claimed_names(db, creds) {
            Ok(c) => claims.push(Some(c)),
            Err(e) => {
                tracing::warn!(database = %db.physical_name, error = %e, "drift: record without its credentials");
                claims.push(None);
            }
        }
    }
    let role_names: Vec<String> =
        claims.iter().flatten().flat_map(|(roles, _)| roles.iter().map(|(r, _)| r.clone())).collect();
    let db_names: Vec<String> = claims.iter().flatten().map(|(_, d)| d.clone()).collect();
    let target = inst.target(&state.key).map_err(|e| e.to_string())?;
    let mut maint = target.connect(MAINTENANCE_DB).await.map_err(|e| e.to_string())?;
    let facts = CatalogFacts::read(&mut maint, &role_names, &db_names).await.map_err(|e| e.to_string())?;
    drop(maint);

    // The least recently read insides first (never read: first of all).
    let mut order: Vec<usize> = (0..dbs.len()).collect();
    order.sort_by_key(|&i| dbs[i].2);
    let mut inside_budget = INSIDE_PER_PASS;
    let mut compared = 0;
    for i in order {
        let (db, creds, _) = &dbs[i];
        let Some((roles, _)) = &claims[i] else { continue };
        let (drift, can_look_inside) = drift::compare(db, roles, &facts);
        let inside = if can_look_inside && inside_budget > 0 {
            inside_budget -= 1;
            match drift::inside(&target, &state.key, db, creds).await {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::debug!(database = %db.physical_name, error = %e, "drift: inside not read");
                    None
                }
            }
        } else {
            None
        };
        store(state, db.id, started, drift, inside, can_look_inside).await.map_err(|e| e.to_string())?;
        compared += 1;
    }
    Ok(compared)
}

/// Stores one database's result unless an operation on it ended after `started` (then the
/// catalog read may predate the change). Without a fresh inside, the last one is kept (and
/// dropped when the inside cannot be looked at any more).
async fn store(
    state: &AppState,
    id: Uuid,
    started: DateTime<Utc>,
    drift: Drift,
    inside: Option<Vec<String>>,
    can_look_inside: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO drift_checks AS c (database_id, checked_at, drift, deep, deep_checked_at) \
         SELECT $1, $2, $3, coalesce($4, '[]'::jsonb), CASE WHEN $4 IS NOT NULL THEN $2 END \
         WHERE NOT EXISTS (SELECT 1 FROM operations o WHERE o.target_id = $1 AND o.kind NOT IN ({CATALOG_NEUTRAL}) \
                           AND (o.status IN ('queued', 'running') OR o.finished_at >= $2)) \
         ON CONFLICT (database_id) DO UPDATE SET checked_at = $2, drift = $3, \
           deep = CASE WHEN $4 IS NOT NULL THEN $4 WHEN $5 THEN c.deep ELSE '[]'::jsonb END, \
           deep_checked_at = CASE WHEN $4 IS NOT NULL THEN $2 WHEN $5 THEN c.deep_checked_at END"
    ))
    .bind(id)
    .bind(started)
    .bind(Json(&drift))
    .bind(inside.as_ref().map(Json))
    .bind(can_look_inside)
    .execute(&state.db)
    .await?;
    Ok(())
}

/// The stored drift of a database, with its inside merged in and the time of the check.
pub async fn cached(state: &AppState, id: Uuid) -> Result<Option<Drift>, sqlx::Error> {
    type Stored = (DateTime<Utc>, Json<Drift>, Json<Vec<String>>);
    let row: Option<Stored> = sqlx::query_as("SELECT checked_at, drift, deep FROM drift_checks WHERE database_id = $1")
        .bind(id)
        .fetch_optional(&state.db)
        .await?;
    Ok(row.map(|(at, drift, inside)| merged(at, drift, inside)))
}

/// [`cached`] for several databases in one query (a list with `include=drift`).
pub async fn cached_many(state: &AppState, ids: &[Uuid]) -> Result<HashMap<Uuid, Drift>, sqlx::Error> {
    type Stored = (Uuid, DateTime<Utc>, Json<Drift>, Json<Vec<String>>);
    let rows: Vec<Stored> =
        sqlx::query_as("SELECT database_id, checked_at, drift, deep FROM drift_checks WHERE database_id = ANY($1)")
            .bind(ids)
            .fetch_all(&state.db)
            .await?;
    Ok(rows.into_iter().map(|(id, at, drift, inside)| (id, merged(at, drift, inside))).collect())
}

fn merged(at: DateTime<Utc>, Json(mut drift): Json<Drift>, Json(inside): Json<Vec<String>>) -> Drift {
    drift.differences.extend(inside);
    drift.checked_at = Some(at);
    drift
}

/// Stores a live check's result (both levels, now).
pub async fn record_live(state: &AppState, id: Uuid, drift: &Drift) -> Result<(), sqlx::Error> {
    if !drift.checked {
        return Ok(());
    }
    // The live result already holds the inside's differences: store them as the inside.
    let at = drift.checked_at.unwrap_or_else(Utc::now);
    sqlx::query(
        "INSERT INTO drift_checks (database_id, checked_at, drift, deep, deep_checked_at) VALUES ($1, $2, $3, '[]', $2) \
         ON CONFLICT (database_id) DO UPDATE SET checked_at = $2, drift = $3, deep = '[]', deep_checked_at = $2",
    )
    .bind(id)
    .bind(at)
    .bind(Json(drift))
    .execute(&state.db)
    .await?;
    Ok(())
}

/// Counts one live check against the tenant's allowance; false when the minute's is used.
pub async fn take_fresh_allowance(state: &AppState, tenant: Uuid) -> Result<bool, sqlx::Error> {
    let used: i32 = sqlx::query_scalar(
        "INSERT INTO fresh_check_windows AS w (tenant_id, window_start, used) VALUES ($1, now(), 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET \
           used = CASE WHEN w.window_start < now() - interval '1 minute' THEN 1 ELSE w.used + 1 END, \
           window_start = CASE WHEN w.window_start < now() - interval '1 minute' THEN now() ELSE w.window_start END \
         RETURNING used",
    )
    .bind(tenant)
    .fetch_one(&state.db)
    .await?;
    Ok(used <= FRESH_PER_MINUTE)
}

/// Whether an operation of this kind may change what the catalog comparison sees (backups,
/// drills and maintenance do not).
pub fn changes_catalog(kind: OperationKind) -> bool {
    !matches!(kind, OperationKind::BackupDatabase | OperationKind::VerifyBackup | OperationKind::Maintenance)
}

/// The kinds [`changes_catalog`] rules out, for SQL.
const CATALOG_NEUTRAL: &str = "'backup_database', 'verify_backup', 'maintenance'";

/// Forgets a database's stored drift (an operation changed it), in the caller's transaction.
pub async fn forget(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM drift_checks WHERE database_id = $1").bind(id).execute(tx).await?;
    Ok(())
}
