//! Shared state of one API process.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

use crate::crypto::MasterKey;
use crate::metrics::Metrics;

/// Tunables of the operation engine (defaults suit production; tests shorten them).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Names this process in `operations.locked_by`.
    pub worker_id: String,
    /// Concurrent operations per process.
    pub workers: usize,
    /// How long a claim lasts without a heartbeat before another worker may resume it.
    pub lease: Duration,
    /// Polling fallback when no NOTIFY arrives.
    pub poll_interval: Duration,
    /// How often expired leases are looked for.
    pub reaper_interval: Duration,
    /// Grace period before sessions of a database being dropped are terminated.
    pub delete_grace: Duration,
    /// How often due maintenance schedules are looked for.
    pub scheduler_interval: Duration,
    /// Fault injection for tests: a pause before every step of an operation.
    pub step_delay: Duration,
    /// How often managed instances are health-checked.
    pub health_interval: Duration,
    /// Operations one tenant may have running at once, across all replicas.
    pub tenant_concurrency: usize,
    /// The shortest interval a maintenance schedule's cron may have.
    pub min_schedule_interval: Duration,
    /// Default statement timeout of maintenance statements (VACUUM, REINDEX, pg_repack's).
    pub maintenance_statement_timeout: Duration,
    /// How long operation logs, audit rows and schedule runs are kept.
    pub retention: Duration,
    /// How often old rows are purged.
    pub purge_interval: Duration,
    /// How often each instance's metrics are collected (once per interval across replicas).
    pub metrics_interval: Duration,
    /// How often each instance's catalog is compared with the records (once per interval
    /// across replicas; GET serves the last result).
    pub drift_interval: Duration,
    /// How long a managed instance's server certificate is valid.
    pub cert_validity: Duration,
    /// A managed instance's certificate is renewed when it expires within this.
    pub cert_renew_before: Duration,
    /// At shutdown, how long running attempts may go on before they are stopped and handed
    /// back to the queue for another worker.
    pub shutdown_grace: Duration,
    /// The portal's cookies are marked Secure (served over TLS, or behind a balancer that
    /// terminates it).
    pub secure_cookies: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("{}-{}", hostname(), Uuid::new_v4().simple()),
            workers: 4,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(2),
            reaper_interval: Duration::from_secs(5),
            delete_grace: Duration::from_secs(5),
            scheduler_interval: Duration::from_secs(5),
            step_delay: Duration::ZERO,
            health_interval: Duration::from_secs(15),
            tenant_concurrency: 2,
            min_schedule_interval: Duration::from_secs(3600),
            maintenance_statement_timeout: Duration::from_secs(6 * 3600),
            retention: Duration::from_secs(90 * 86_400),
            purge_interval: Duration::from_secs(3600),
            metrics_interval: Duration::from_secs(15),
            drift_interval: Duration::from_secs(60),
            cert_validity: Duration::from_secs(90 * 86_400),
            cert_renew_before: Duration::from_secs(30 * 86_400),
            shutdown_grace: Duration::from_secs(20),
            secure_cookies: false,
        }
    }
}

impl EngineConfig {
    /// What the operation engine reads of these tunables.
    pub fn worker(&self) -> dbaas_engine::WorkerConfig {
        dbaas_engine::WorkerConfig {
            worker_id: self.worker_id.clone(),
            workers: self.workers,
            lease: self.lease,
            poll_interval: self.poll_interval,
            step_delay: self.step_delay,
            tenant_concurrency: self.tenant_concurrency,
        }
    }
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "dbaas".into())
}

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    /// The operation engine's own pool (claims, heartbeats, outcomes).
    pub engine_db: PgPool,
    /// The engine's part of [`EngineConfig`] (see [`EngineConfig::worker`]).
    pub worker: Arc<dbaas_engine::WorkerConfig>,
    pub key: MasterKey,
    pub engine: Arc<EngineConfig>,
    pub metrics: Arc<Metrics>,
    /// Woken when an operation is enqueued (LISTEN dbaas_jobs).
    pub job_wakeup: Arc<Notify>,
    /// Ids of operations whose status changed (LISTEN dbaas_operations).
    pub op_events: broadcast::Sender<Uuid>,
    /// Connections to hosts of managed instances.
    pub hosts: Arc<crate::hosts::HostPool>,
    /// Cancelled when the process starts shutting down: long-lived responses (the portal's
    /// event streams) end then, so the HTTP server's drain is not held open by them.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Makes a point-in-time backup's dump (a scratch cluster recovered to its time): the
    /// managed instances' code, which this crate cannot name, set by the service.
    pub point_in_time: Option<PointInTimeHook>,
    /// Brings the routing proxy of an instance's host in line with the state database (its
    /// databases and logins), reloading it: the managed instances' code, set by the service.
    /// Called by the operations that change who may log in where.
    pub proxy_sync: Option<ProxySyncHook>,
}

/// See [`AppState::proxy_sync`]: `(state, instance id)`.
pub type ProxySyncHook = for<'a> fn(
    &'a AppState,
    Uuid,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), dbaas_engine::OpError>> + Send + 'a>,
>;

impl AppState {
    /// Re-syncs the proxy in front of `instance` (nothing when the service has no proxies or
    /// the instance's host runs none).
    pub async fn sync_proxy(&self, instance: Uuid) -> Result<(), dbaas_engine::OpError> {
        match self.proxy_sync {
            Some(sync) => sync(self, instance).await,
            None => Ok(()),
        }
    }
}

/// See [`AppState::point_in_time`].
pub type PointInTimeHook = for<'a> fn(
    // The engine's context, not `operation::OpContext` (the same type): this module is below
    // `operation`.
    &'a dbaas_engine::OpContext<AppState>,
    &'a dbaas_store::backups::BackupRow,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), dbaas_engine::OpError>> + Send + 'a>,
>;
