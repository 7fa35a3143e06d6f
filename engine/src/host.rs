//! What the engine needs from the application's process state: its pools, its tunables, the
//! type of its operation kinds, and where a finished attempt is counted.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

/// An application's operation kind: a closed enum stored as text in `operations.kind`.
pub trait Kind:
    Copy
    + Send
    + Sync
    + Unpin
    + PartialEq
    + std::fmt::Debug
    + AsRef<str>
    + TryFrom<String, Error: std::fmt::Display>
    + 'static
{
}

impl<T> Kind for T where
    T: Copy
        + Send
        + Sync
        + Unpin
        + PartialEq
        + std::fmt::Debug
        + AsRef<str>
        + TryFrom<String, Error: std::fmt::Display>
        + 'static
{
}

/// Operations of one kind that go before all others and are exempt from the per-tenant limit
/// (an expired credential must be revoked on time, whatever else is queued). Such an
/// operation waits only behind earlier open ones on the same target with the same `key`
/// parameter, never behind a long job on the target.
#[derive(Debug, Clone, Copy)]
pub struct Urgent {
    pub kind: &'static str,
    /// A top-level field of the operation's params.
    pub key: &'static str,
}

/// The engine's tunables (defaults suit production; tests shorten them).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this process in `operations.locked_by`.
    pub worker_id: String,
    /// Concurrent operations per process.
    pub workers: usize,
    /// How long a claim lasts without a heartbeat before another worker may resume it.
    pub lease: Duration,
    /// Polling fallback when no NOTIFY arrives.
    pub poll_interval: Duration,
    /// Fault injection for tests: a pause before every step of an operation.
    pub step_delay: Duration,
    /// Operations one tenant may have running at once, across all replicas.
    pub tenant_concurrency: usize,
}

/// The application's process state, as the engine sees it.
pub trait Host: Clone + Send + Sync + 'static {
    type Kind: Kind;

    /// The columns [`crate::OperationRow`] reads, for `FROM operations o`: the table's own
    /// plus `tenant_name` (the application knows where tenants' names are).
    const OPERATION_COLUMNS: &'static str;
    /// The kind that jumps the queue, if any.
    const URGENT: Option<Urgent>;

    /// The main pool: log lines, cancels from requests, periodic loops.
    fn db(&self) -> &PgPool;
    /// The engine's own pool (claims, heartbeats, outcomes), so a busy main pool never
    /// starves a heartbeat.
    fn engine_db(&self) -> &PgPool;
    fn worker_config(&self) -> &WorkerConfig;
    /// Woken when an operation is enqueued (LISTEN on [`crate::queue::JOBS_CHANNEL`]).
    fn job_wakeup(&self) -> &Notify;
    /// Ids of operations whose status changed (LISTEN on [`crate::queue::OPS_CHANNEL`]).
    fn op_events(&self) -> &broadcast::Sender<Uuid>;
    /// An attempt ended: `outcome` is succeeded, failed, retrying, cancelled, lost or
    /// handed_back; `took` is absent for a hand-back.
    fn attempt_finished(&self, kind: Self::Kind, outcome: &'static str, took: Option<Duration>);
}
