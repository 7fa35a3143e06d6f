//! Runs the API: state database pool and migrations, HTTP server, workers, listener, reaper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::crypto::MasterKey;
use crate::metrics::Metrics;
use crate::ops;
use crate::state::{AppState, EngineConfig};

pub use dbaas_store::MIGRATOR;

pub use crate::catalog::conn::SERVER_KEEPALIVES;

fn state_options(url: &str) -> Result<sqlx::postgres::PgConnectOptions> {
    let opts: sqlx::postgres::PgConnectOptions = url.parse().context("DATABASE_URL is not a PostgreSQL URL")?;
    Ok(opts.options(SERVER_KEEPALIVES))
}

pub async fn connect_state_db(url: &str) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(state_options(url)?)
        .await
        .context("connecting to the state database (DATABASE_URL)")?;
    MIGRATOR.run(&pool).await.context("applying migrations to the state database")?;
    Ok(pool)
}

/// The engine's own pool (claims, heartbeats, outcomes): HTTP load on the main pool can never
/// delay a heartbeat past its lease. Sized for one heartbeat and one claim or outcome per
/// worker, plus the reaper and scheduler.
pub async fn connect_engine_db(url: &str, workers: usize) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(u32::try_from(workers * 2 + 2).unwrap_or(130))
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(state_options(url)?)
        .await
        .context("connecting to the state database for the operation engine")
}

/// The process state; the engine shares the main pool until [`connect_engine_db`]'s pool
/// replaces it (`serve` always does).
pub fn state(db: PgPool, key: MasterKey, engine: EngineConfig) -> AppState {
    AppState {
        engine_db: db.clone(),
        db,
        key,
        worker: Arc::new(engine.worker()),
        engine: Arc::new(engine),
        metrics: Arc::new(Metrics::default()),
        job_wakeup: Arc::new(Notify::new()),
        op_events: broadcast::channel(1024).0,
        hosts: Arc::new(crate::hosts::HostPool::default()),
        stopping: CancellationToken::new(),
        point_in_time: Some(dbaas_managed::pitr::database::hook),
        proxy_sync: Some(dbaas_managed::proxy::sync::hook),
    }
}

/// Certificate and key files for HTTPS.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Serves plain HTTP until `shutdown` fires.
pub async fn serve(state: AppState, listen: SocketAddr, shutdown: CancellationToken) -> Result<()> {
    serve_with(state, listen, None, shutdown).await
}

/// Serves until `shutdown` fires; then stops taking requests and claiming work, lets running
/// operations finish within the engine's shutdown grace, stops the ones still running and
/// hands them back to the queue (another replica takes them at once), then returns.
pub async fn serve_with(
    mut state: AppState,
    listen: SocketAddr,
    tls: Option<Tls>,
    shutdown: CancellationToken,
) -> Result<()> {
    // Load TLS material before anything starts, so a bad file fails fast and clearly.
    let tls_config =
        match &tls {
            Some(t) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                Some(axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert, &t.key).await.with_context(
                    || format!("loading TLS certificate {} and key {}", t.cert.display(), t.key.display()),
                )?)
            }
            None => None,
        };
    if tls_config.is_some() {
        std::sync::Arc::make_mut(&mut state.engine).secure_cookies = true;
    }
    state.stopping = shutdown.clone();
    dbaas_engine::listener::spawn(state.clone(), shutdown.clone());
    ops::reaper::spawn(state.clone(), shutdown.clone());
    ops::scheduler::spawn(state.clone(), shutdown.clone());
    ops::retention::spawn(state.clone(), shutdown.clone());
    crate::backup::lifecycle::spawn(state.clone(), shutdown.clone());
    crate::observe::collect::spawn(state.clone(), shutdown.clone());
    crate::catalog::reconcile::spawn(state.clone(), shutdown.clone());
    crate::managed::health::spawn(state.clone(), shutdown.clone());
    crate::managed::pitr::schedule::spawn(state.clone(), shutdown.clone());
    crate::managed::proxy::sync::spawn(state.clone(), shutdown.clone());
    let hand_back = CancellationToken::new();
    let workers =
        dbaas_engine::worker::spawn::<AppState, ops::job::Job>(state.clone(), shutdown.clone(), hand_back.clone());
    let worker_id = state.engine.worker_id.clone();
    let grace = state.engine.shutdown_grace;
    let app = crate::http::app(state);
    let stop = shutdown.clone();
    match tls_config {
        None => {
            let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
            tracing::info!(address = %listener.local_addr()?, worker = %worker_id, "dbaas-api listening (http)");
            axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await?;
        }
        Some(config) => {
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                h.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            tracing::info!(address = %listen, worker = %worker_id, "dbaas-api listening (https)");
            axum_server::bind_rustls(listen, config).handle(handle).serve(app.into_make_service()).await?;
        }
    }
    let mut drain = Box::pin(async {
        for w in workers {
            let _ = w.await;
        }
    });
    if tokio::time::timeout(grace, &mut drain).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "operations still running after the shutdown grace; handing them back"
        );
        hand_back.cancel();
        // Handing back is a cleanup and one transaction per attempt; bounded all the same.
        if tokio::time::timeout(Duration::from_secs(30), drain).await.is_err() {
            tracing::warn!("attempts not handed back in time; another worker resumes them after their lease");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Cancels the token on Ctrl-C or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                t.cancel();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}
