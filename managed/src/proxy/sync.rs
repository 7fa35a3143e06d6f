//! Bringing a host's proxy in line with the state database: its certificate (issued by the
//! proxy's CA for the names clients use), the clusters' CA bundle, the three configuration
//! files, then a `RELOAD` (clients stay connected) or a start when it is not running.
//!
//! Everything on the host is derived from the state database, so a lost or edited file is
//! rewritten and a killed proxy started again by the next pass. One sync per host at a time
//! across replicas (a transaction-scoped advisory lock: released even when this process
//! dies mid-way).

use std::time::Duration;

use dbaas_domain::state::AppState;
use dbaas_engine::OpError;
use dbaas_hosts::{tlsgen, HostRecord};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::config::{self, hex, ProxySpec};
use super::daemon::Daemon;
use super::desired;

/// What [`AppState::proxy_sync`] calls: the proxy of the instance's host, if it runs one.
pub fn hook(
    state: &AppState,
    instance: Uuid,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), OpError>> + Send + '_>> {
    Box::pin(async move {
        let host: Option<Uuid> = sqlx::query_scalar(
            "SELECT h.id FROM instances i JOIN hosts h ON h.id = i.host_id \
             WHERE i.id = $1 AND i.kind = 'managed' AND h.proxy_port IS NOT NULL",
        )
        .bind(instance)
        .fetch_optional(&state.db)
        .await?;
        match host {
            Some(h) => sync_host(state, h).await,
            None => Ok(()),
        }
    })
}

/// Every host with a proxy, each interval: rebuilt if its files differ, started if it died.
pub fn spawn(state: AppState, shutdown: CancellationToken) {
    let interval = state.engine.health_interval;
    dbaas_engine::periodic::every(state, shutdown, interval, "proxy check", |s| async move { pass(&s).await });
}

async fn pass(state: &AppState) -> Result<(), sqlx::Error> {
    let hosts: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM hosts WHERE proxy_port IS NOT NULL ORDER BY name")
        .fetch_all(&state.db)
        .await?;
    for id in hosts {
        if let Err(e) = sync_host(state, id).await {
            tracing::warn!(host = %id, error = %e.message, "proxy check failed");
        }
    }
    Ok(())
}

/// A transaction holding the host's proxy lock (released with it, also when this process
/// dies).
async fn locked(state: &AppState, host_id: Uuid) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("dbaas:proxy:{host_id}"))
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Syncs one host's proxy and records what it found.
pub async fn sync_host(state: &AppState, host_id: Uuid) -> Result<(), OpError> {
    let mut tx = locked(state, host_id).await?;
    let Some(host) = HostRecord::load(&mut *tx, host_id).await? else { return Ok(()) };
    let Some(port) = host.proxy_port else { return Ok(()) };
    let result = tokio::time::timeout(Duration::from_secs(60), apply(state, &host, port as u16))
        .await
        .unwrap_or_else(|_| Err(OpError::retryable("proxy_timeout", "the proxy did not sync within 60 s")));
    let (health, message) = match &result {
        Ok(()) => ("healthy", None),
        Err(e) => ("down", Some(e.message.clone())),
    };
    sqlx::query("UPDATE hosts SET proxy_health = $2, proxy_message = $3, proxy_checked_at = now() WHERE id = $1")
        .bind(host_id)
        .bind(health)
        .bind(message)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    result
}

async fn apply(state: &AppState, host: &HostRecord, port: u16) -> Result<(), OpError> {
    let want = desired::load(state, host).await?;
    let exec = state.hosts.get(host, &state.key).await?;
    let daemon = Daemon::new(exec, host, port)?;
    daemon.prepare().await?;
    let tag = certificate(state, host, &daemon, &want.names).await?;
    let ca_file = format!("servers-{}.crt", &hex(&dbaas_crypto::sha256(want.server_cas.as_bytes()))[..16]);
    if !daemon.exists(&ca_file).await? {
        daemon.replace(&ca_file, &want.server_cas, "0600").await?;
    }
    let spec = ProxySpec {
        listen_addr: host.instance_address(),
        port,
        dir: daemon.dir().to_string(),
        client_cert: format!("client-{tag}.crt"),
        client_key: format!("client-{tag}.key"),
        server_ca: ca_file.clone(),
        routes: want.routes,
        logins: want.logins,
    };
    let rendered = config::render(&spec).map_err(|e| OpError::permanent("proxy_config", e))?;
    let digest = rendered.digest();
    let applied = daemon.read("applied").await?.map(|s| s.trim().to_string());
    // The files as they are on the host, not only the digest last applied: a file lost or
    // edited there is written again (and the proxy reloaded).
    let mut changed = applied.as_deref() != Some(digest.as_str());
    for (name, want) in
        [("pgbouncer.ini", &rendered.ini), ("hba.conf", &rendered.hba), ("userlist.txt", &rendered.userlist)]
    {
        if changed {
            break;
        }
        changed = daemon.read(name).await?.as_deref() != Some(want.as_str());
    }
    if changed {
        // The auth file and hba first: a new route never opens before its rules.
        daemon.replace("userlist.txt", &rendered.userlist, "0600").await?;
        daemon.replace("hba.conf", &rendered.hba, "0600").await?;
        daemon.replace("pgbouncer.ini", &rendered.ini, "0600").await?;
    }
    match daemon.pid().await? {
        Some(_) if changed => daemon.reload().await?,
        Some(_) => {}
        None => {
            if applied.is_some() {
                tracing::warn!(host = %host.name, "the proxy was not running; starting it");
            }
            daemon.start().await?;
        }
    }
    if changed {
        daemon.replace("applied", &digest, "0600").await?;
        // Certificates and bundles no longer named by the configuration.
        for f in daemon.list("client-").await?.into_iter().chain(daemon.list("servers-").await?) {
            if f != spec.client_cert && f != spec.client_key && f != ca_file {
                daemon.remove(&f).await?;
            }
        }
    }
    Ok(())
}

/// The tag of the proxy's server certificate files, issuing a new certificate when the
/// names clients use changed, the files are gone, or it is due for renewal.
async fn certificate(
    state: &AppState,
    host: &HostRecord,
    daemon: &Daemon,
    names: &[String],
) -> Result<String, OpError> {
    let mut sorted = names.to_vec();
    sorted.sort();
    if let (Some(tag), Some(current)) = (&host.proxy_cert_tag, &host.proxy_cert_names) {
        let mut current = current.clone();
        current.sort();
        let fresh = !crate::certs::due(host.proxy_cert_not_after, chrono::Utc::now(), state.engine.cert_renew_before);
        if current == sorted
            && fresh
            && daemon.exists(&format!("client-{tag}.crt")).await?
            && daemon.exists(&format!("client-{tag}.key")).await?
        {
            return Ok(tag.clone());
        }
    }
    let key_enc = host
        .proxy_ca_key_enc
        .as_ref()
        .ok_or_else(|| OpError::permanent("proxy_ca_missing", format!("host {} has no proxy CA", host.name)))?;
    let ca_key = state.key.decrypt(key_enc, &format!("proxy-ca:{}", host.id))?;
    let leaf = tlsgen::issue_server(&tlsgen::proxy_ca_name(&host.name), &ca_key, names, state.engine.cert_validity)
        .map_err(|e| OpError::permanent("certificate", e.to_string()))?;
    let tag = hex(&dbaas_crypto::sha256(leaf.cert_pem.as_bytes()))[..16].to_string();
    daemon.replace(&format!("client-{tag}.key"), &leaf.key_pem, "0600").await?;
    daemon.replace(&format!("client-{tag}.crt"), &leaf.cert_pem, "0644").await?;
    sqlx::query("UPDATE hosts SET proxy_cert_names = $2, proxy_cert_tag = $3, proxy_cert_not_after = $4 WHERE id = $1")
        .bind(host.id)
        .bind(names)
        .bind(&tag)
        .bind(leaf.not_after)
        .execute(&state.db)
        .await?;
    Ok(tag)
}

/// Stops a host's proxy for good (the host is being deleted): it no longer has one in the
/// record first, under the sync lock, so no check starts it again. An unreachable host
/// keeps its process (logged): the record goes all the same.
pub async fn retire(state: &AppState, host: &HostRecord) -> Result<(), OpError> {
    let Some(port) = host.proxy_port else { return Ok(()) };
    let mut tx = locked(state, host.id).await?;
    sqlx::query("UPDATE hosts SET proxy_port = NULL, proxy_health = 'unknown' WHERE id = $1")
        .bind(host.id)
        .execute(&mut *tx)
        .await?;
    let stopped = async {
        let exec = state.hosts.get(host, &state.key).await?;
        Daemon::new(exec, host, port as u16)?.stop().await
    };
    if let Err(e) = tokio::time::timeout(Duration::from_secs(30), stopped)
        .await
        .unwrap_or_else(|_| Err(OpError::retryable("proxy_timeout", "no answer within 30 s")))
    {
        tracing::warn!(host = %host.name, error = %e.message, "the proxy of a deleted host was not stopped");
    }
    tx.commit().await?;
    Ok(())
}

/// Stops a host's proxy without changing its record (`dev` stopping with the machine): the
/// next check starts it again.
pub async fn stop(state: &AppState, host: &HostRecord) -> Result<(), OpError> {
    let Some(port) = host.proxy_port else { return Ok(()) };
    let exec = state.hosts.get(host, &state.key).await?;
    Daemon::new(exec, host, port as u16)?.stop().await
}
