//! The operations queue.
//!
//! Why our own queue rather than a job crate (apalis, graphile_worker, underway): an
//! operation here *is* a domain resource — tenants read it, cancel it, list it by target and
//! read its log lines — and it must be written in the same transaction as the resource it
//! changes. A job crate keeps its own tables, so every operation would live twice and the two
//! copies could disagree. The mechanism itself is small: claim with `FOR UPDATE SKIP LOCKED`,
//! a lease renewed by heartbeat, exponential backoff, NOTIFY to wake workers.
//!
//! Operations on one target run in order: a claim skips an operation while an earlier one on
//! the same target is still open.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::error::OpError;
use crate::host::{Host, Kind};

pub const JOBS_CHANNEL: &str = "dbaas_jobs";
pub const OPS_CHANNEL: &str = "dbaas_operations";

/// Where an operation is in its life (`operations.status`). The API's `OperationStatus`
/// shows the same five states; the engine keeps its own enum so it depends on no API model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for a worker (first run, or a retry after a retryable error).
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(format!("unknown operation status {other:?}")),
        })
    }
}

/// What is enqueued: a kind and its params column.
pub trait Payload<K> {
    fn kind(&self) -> K;
    fn params(&self) -> serde_json::Value;
}

#[derive(Debug, Clone)]
pub struct OperationRow<K> {
    pub id: Uuid,
    /// Order of enqueueing (unique): the key lists page by.
    pub seq: i64,
    /// Decoded strictly: the column's CHECK lists the kinds, and a stray value is an error.
    pub kind: K,
    pub target_kind: String,
    pub target_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub tenant_name: Option<String>,
    pub params: serde_json::Value,
    pub status: Status,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub cancel_requested: bool,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub error_retryable: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

fn decode_text<T: TryFrom<String, Error: std::fmt::Display>>(row: &PgRow, column: &str) -> Result<T, sqlx::Error> {
    let text: String = row.try_get(column)?;
    T::try_from(text).map_err(|e| sqlx::Error::ColumnDecode { index: column.into(), source: e.to_string().into() })
}

/// Written by hand rather than derived: the kind is the application's type.
impl<'r, K: Kind> sqlx::FromRow<'r, PgRow> for OperationRow<K> {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        let status = status
            .parse()
            .map_err(|e: String| sqlx::Error::ColumnDecode { index: "status".into(), source: e.into() })?;
        Ok(Self {
            id: row.try_get("id")?,
            seq: row.try_get("seq")?,
            kind: decode_text(row, "kind")?,
            target_kind: row.try_get("target_kind")?,
            target_id: row.try_get("target_id")?,
            tenant_id: row.try_get("tenant_id")?,
            tenant_name: row.try_get("tenant_name")?,
            params: row.try_get("params")?,
            status,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_after: row.try_get("run_after")?,
            locked_by: row.try_get("locked_by")?,
            cancel_requested: row.try_get("cancel_requested")?,
            error_code: row.try_get("error_code")?,
            error_message: row.try_get("error_message")?,
            error_retryable: row.try_get("error_retryable")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// Enqueues an operation inside the caller's transaction; workers are woken at commit.
pub async fn enqueue<S: Host>(
    tx: &mut Transaction<'_, Postgres>,
    job: &(impl Payload<S::Kind> + ?Sized),
    target_kind: &str,
    target_id: Uuid,
    tenant_id: Option<Uuid>,
) -> Result<OperationRow<S::Kind>, sqlx::Error> {
    enqueue_on::<S>(tx, job, target_kind, target_id, tenant_id).await
}

/// [`enqueue`] on a connection the caller already holds in a transaction (an operation's
/// outcome enqueueing its follow-up).
pub async fn enqueue_on<S: Host>(
    conn: &mut sqlx::PgConnection,
    job: &(impl Payload<S::Kind> + ?Sized),
    target_kind: &str,
    target_id: Uuid,
    tenant_id: Option<Uuid>,
) -> Result<OperationRow<S::Kind>, sqlx::Error> {
    let (kind, params) = (job.kind(), job.params());
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO operations (id, kind, target_kind, target_id, tenant_id, params, status) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued')",
    )
    .bind(id)
    .bind(kind.as_ref())
    .bind(target_kind)
    .bind(target_id)
    .bind(tenant_id)
    .bind(params)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')").bind(JOBS_CHANNEL).execute(&mut *conn).await?;
    fetch::<S>(&mut *conn, id).await?.ok_or(sqlx::Error::RowNotFound)
}

pub async fn fetch<'e, S: Host>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> Result<Option<OperationRow<S::Kind>>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {} FROM operations o WHERE o.id = $1", S::OPERATION_COLUMNS))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Claims the next runnable operation: queued and due, or running with an expired lease
/// (its worker died), and not behind an open operation on the same target.
///
/// Fair sharing: an operation of a tenant that already has `tenant_limit` operations running
/// (on any replica) waits, so one tenant cannot occupy every worker. The [`Host::URGENT`] kind
/// goes first, is exempt from the tenant limit, and waits only behind operations with the same
/// key parameter on its target, never behind a long job there (an expired login must go on time).
pub async fn claim<S: Host>(
    db: &PgPool,
    worker: &str,
    lease: Duration,
    tenant_limit: usize,
) -> Result<Option<OperationRow<S::Kind>>, sqlx::Error> {
    let (urgent_kind, urgent_key) = S::URGENT.map_or((None, None), |u| (Some(u.kind), Some(u.key)));
    let claimed: Option<(Uuid,)> = sqlx::query_as(
        "UPDATE operations SET status = 'running', locked_by = $1, \
             locked_until = now() + $2 * interval '1 millisecond', attempts = attempts + 1, \
             started_at = coalesce(started_at, now()) \
         WHERE id = ( \
             SELECT o.id FROM operations o \
             WHERE o.status IN ('queued', 'running') AND o.run_after <= now() \
               AND (o.status = 'queued' OR o.locked_until < now()) \
               AND CASE WHEN o.kind = $4 THEN NOT EXISTS ( \
                        SELECT 1 FROM operations p WHERE p.target_id = o.target_id AND p.seq < o.seq \
                          AND p.status IN ('queued', 'running') \
                          AND p.params->>$5 = o.params->>$5) \
                   ELSE NOT EXISTS (SELECT 1 FROM operations p WHERE p.target_id = o.target_id \
                               AND p.seq < o.seq AND p.status IN ('queued', 'running')) \
                        AND (o.tenant_id IS NULL OR ( \
                            SELECT count(*) FROM operations r WHERE r.tenant_id = o.tenant_id \
                              AND r.status = 'running' AND r.locked_until > now() \
                              AND r.kind IS DISTINCT FROM $4) < $3) \
                   END \
             ORDER BY (o.kind = $4) IS TRUE DESC, o.seq FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING id",
    )
    .bind(worker)
    .bind(lease.as_millis() as f64)
    .bind(i64::try_from(tenant_limit).unwrap_or(i64::MAX))
    .bind(urgent_kind)
    .bind(urgent_key)
    .fetch_optional(db)
    .await?;
    match claimed {
        Some((id,)) => fetch::<S>(db, id).await,
        None => Ok(None),
    }
}

/// Renews the claim; `Ok(None)` means the claim was lost (another worker took over).
/// Returns whether a cancel was requested.
pub async fn heartbeat(db: &PgPool, id: Uuid, worker: &str, lease: Duration) -> Result<Option<bool>, sqlx::Error> {
    let row: Option<(bool,)> = sqlx::query_as(
        "UPDATE operations SET locked_until = now() + $3 * interval '1 millisecond' \
         WHERE id = $1 AND locked_by = $2 AND status = 'running' RETURNING cancel_requested",
    )
    .bind(id)
    .bind(worker)
    .bind(lease.as_millis() as f64)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| r.0))
}

pub async fn log<'e>(db: impl PgExecutor<'e>, id: Uuid, level: &str, message: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO operation_logs (operation_id, level, message) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(level)
        .bind(message)
        .execute(db)
        .await?;
    Ok(())
}

/// Ends an operation in `status` inside `tx` (which also applies the resource's change),
/// provided this worker still holds it (`worker` None: only while still queued, i.e. a
/// cancel before any worker took it). Returns false otherwise.
pub async fn finish(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    worker: Option<&str>,
    status: Status,
    error: Option<&OpError>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE operations SET status = $3, finished_at = now(), locked_by = NULL, locked_until = NULL, \
             error_code = coalesce($4, error_code), error_message = coalesce($5, error_message), \
             error_retryable = coalesce($6, error_retryable) \
         WHERE id = $1 AND (($2::text IS NULL AND status = 'queued') OR (locked_by = $2 AND status = 'running'))",
    )
    .bind(id)
    .bind(worker)
    .bind(status.as_str())
    .bind(error.map(|e| e.code.clone()))
    .bind(error.map(|e| e.message.clone()))
    .bind(error.map(|e| e.retryable))
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if done {
        notify_changed(tx, id).await?;
    }
    Ok(done)
}

/// Puts a failed attempt back in the queue after an exponential backoff (1 s, 2 s, 4 s … 60 s).
pub async fn retry_later<K>(
    db: &PgPool,
    op: &OperationRow<K>,
    worker: &str,
    error: &OpError,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let backoff = 2f64.powi((op.attempts - 1).clamp(0, 6)).min(60.0);
    let jitter = rand::random::<f64>() * backoff * 0.2;
    let mut tx = db.begin().await?;
    let run_after: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE operations SET status = 'queued', locked_by = NULL, locked_until = NULL, \
             run_after = now() + $3 * interval '1 second', error_code = $4, error_message = $5, error_retryable = true \
         WHERE id = $1 AND locked_by = $2 RETURNING run_after",
    )
    .bind(op.id)
    .bind(worker)
    .bind(backoff + jitter)
    .bind(&error.code)
    .bind(&error.message)
    .fetch_optional(&mut *tx)
    .await?;
    // No row: another worker holds the claim now, and this attempt records nothing. The log
    // lines commit with the re-queueing, before the next attempt can start.
    let Some(run_after) = run_after else { return Ok(None) };
    log(&mut *tx, op.id, "warn", &format!("attempt failed, will retry: {error}")).await?;
    log(&mut *tx, op.id, "info", &format!("next attempt at {}", run_after.to_rfc3339())).await?;
    notify_changed(&mut tx, op.id).await?;
    tx.commit().await?;
    Ok(Some(run_after))
}

/// Puts an attempt stopped by this process's shutdown back in the queue, ready at once. The
/// attempt is not counted: it did not fail, it was interrupted, and the operation's steps
/// resume from what is recorded. Returns false when the claim was no longer this worker's.
pub async fn hand_back<K>(db: &PgPool, op: &OperationRow<K>, worker: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let released = sqlx::query(
        "UPDATE operations SET status = 'queued', locked_by = NULL, locked_until = NULL, run_after = now(), \
             attempts = greatest(attempts - 1, 0) \
         WHERE id = $1 AND locked_by = $2 AND status = 'running'",
    )
    .bind(op.id)
    .bind(worker)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !released {
        return Ok(false);
    }
    log(&mut *tx, op.id, "warn", &format!("attempt handed back: {worker} is shutting down; another worker resumes it"))
        .await?;
    notify_changed(&mut tx, op.id).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn notify_changed(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(OPS_CHANNEL).bind(id.to_string()).execute(&mut **tx).await?;
    Ok(())
}
