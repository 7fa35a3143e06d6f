//! A managed instance's TLS: its own CA (key kept encrypted in the state database) and the
//! server certificate it signs, issued at provisioning and renewed before it expires.
//!
//! Renewal keeps the CA, so clients that pinned it (`sslmode=verify-full` with the CA the
//! API hands out) keep connecting; the new files replace the old ones by rename and the
//! server picks them up on reload (PostgreSQL reloads its SSL context on SIGHUP; sessions
//! already open keep theirs). An instance provisioned before the CA key was kept gets a
//! new CA on its first renewal, which its clients must fetch again (logged as a warning).

use chrono::{DateTime, Utc};
use dbaas_domain::catalog::conn::InstanceTarget;

use super::node::Node;
use dbaas_domain::catalog::conn::{InstanceRow, MAINTENANCE_DB};
use dbaas_domain::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_hosts::tlsgen;

fn cert_error(e: rcgen::Error) -> OpError {
    OpError::permanent("certificate", e.to_string())
}

/// The names clients reach the server by.
fn names(inst: &InstanceRow) -> Vec<String> {
    let mut names = vec![inst.host.clone(), inst.public_host.clone(), "localhost".into(), "127.0.0.1".into()];
    names.dedup();
    names
}

fn key_context(inst: &InstanceRow) -> String {
    format!("instance-ca:{}", inst.id)
}

/// The CA's key, when the state database keeps it.
async fn stored_ca_key(ctx: &OpContext, inst: &InstanceRow) -> Result<Option<String>, OpError> {
    let enc: Option<Vec<u8>> = sqlx::query_scalar("SELECT ca_key_enc FROM instances WHERE id = $1")
        .bind(inst.id)
        .fetch_optional(&ctx.state.db)
        .await?
        .flatten();
    enc.map(|e| ctx.state.key.decrypt(&e, &key_context(inst)))
        .transpose()
        .map_err(|e| OpError::permanent("secret", e.to_string()))
}

/// Writes the server's key and certificate (each replaced by rename, never half-written).
async fn install(node: &Node, leaf: &tlsgen::LeafPem) -> Result<(), OpError> {
    let data = node.data();
    node.replace_file(&format!("{data}/server.key"), &leaf.key_pem, "0600").await?;
    node.replace_file(&format!("{data}/server.crt"), &leaf.cert_pem, "0644").await?;
    Ok(())
}

/// At provisioning: keeps what an earlier attempt finished (files on the host and their
/// record); otherwise makes the CA and the server certificate. Returns the CA (PEM).
pub(super) async fn ensure(ctx: &OpContext, node: &Node, inst: &InstanceRow) -> Result<String, OpError> {
    let data = node.data();
    let ca_path = format!("{data}/ca.crt");
    if inst.cert_not_after.is_some()
        && node.exists(&ca_path).await?
        && node.exists(&format!("{data}/server.key")).await?
    {
        return Ok(node.read_file(&ca_path).await?);
    }
    let ca_name = tlsgen::instance_ca_name(&inst.name);
    let ca = tlsgen::new_ca(&ca_name).map_err(cert_error)?;
    let leaf = tlsgen::issue_server(&ca_name, &ca.key_pem, &names(inst), ctx.state.engine.cert_validity)
        .map_err(cert_error)?;
    install(node, &leaf).await?;
    node.replace_file(&ca_path, &ca.cert_pem, "0644").await?;
    record(ctx, inst, &leaf, Some(&ca)).await?;
    Ok(ca.cert_pem)
}

async fn record(
    ctx: &OpContext,
    inst: &InstanceRow,
    leaf: &tlsgen::LeafPem,
    new_ca: Option<&tlsgen::CaPem>,
) -> Result<(), OpError> {
    sqlx::query(
        "UPDATE instances SET cert_not_after = $2, ca_cert = coalesce($3, ca_cert), \
         ca_key_enc = coalesce($4, ca_key_enc), version = version + 1 WHERE id = $1",
    )
    .bind(inst.id)
    .bind(leaf.not_after)
    .bind(new_ca.map(|c| c.cert_pem.clone()))
    .bind(new_ca.map(|c| ctx.state.key.encrypt(&c.key_pem, &key_context(inst))))
    .execute(&ctx.state.db)
    .await?;
    Ok(())
}

/// Issues a new server certificate from the instance's CA, installs it, reloads, and checks
/// that a client verifying against the recorded CA connects.
pub(super) async fn renew(ctx: &OpContext, inst: &InstanceRow, node: &Node) -> Result<(), OpError> {
    let ca_name = tlsgen::instance_ca_name(&inst.name);
    ctx.step("issuing a server certificate from the instance's CA").await;
    let (ca_key, new_ca) = match stored_ca_key(ctx, inst).await? {
        Some(key) => (key, None),
        None => {
            ctx.log("warn", "no CA key is kept for this instance (provisioned before keys were kept): issuing a new CA; clients must fetch the instance's CA again").await;
            let ca = tlsgen::new_ca(&ca_name).map_err(cert_error)?;
            (ca.key_pem.clone(), Some(ca))
        }
    };
    let leaf =
        tlsgen::issue_server(&ca_name, &ca_key, &names(inst), ctx.state.engine.cert_validity).map_err(cert_error)?;
    install(node, &leaf).await?;
    if let Some(ca) = &new_ca {
        node.replace_file(&format!("{}/ca.crt", node.data()), &ca.cert_pem, "0644").await?;
    }
    record(ctx, inst, &leaf, new_ca.as_ref()).await?;

    // Reloaded through the host, not a session: a session would have to verify the
    // certificate being replaced against a CA that may just have changed.
    ctx.step("reloading the server").await;
    node.pg("pg_ctl", &["reload", "-D", &node.data()]).await?;
    let wanted = super::tls_probe::pem_der(&leaf.cert_pem);
    let started = std::time::Instant::now();
    loop {
        let presented = super::tls_probe::presented_certificate(&inst.host, inst.port as u16)
            .await
            .map_err(|e| OpError::retryable("tls_probe", e))?;
        if Some(presented) == wanted {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(10) {
            return Err(OpError::retryable(
                "certificate_not_loaded",
                "the server still presents its previous certificate 10 s after the reload",
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A client pinning the recorded CA connects (verify-full, as the service itself does).
    let inst = dbaas_domain::catalog::record::load_instance(&ctx.state.db, inst.id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the instance record is gone"))?;
    let mut conn = inst.target(&ctx.state.key)?.connect(MAINTENANCE_DB).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    ctx.log("info", &format!("the server presents the new certificate, valid until {}", leaf.not_after.to_rfc3339()))
        .await;
    Ok(())
}

/// Whether a certificate expiring at `not_after` is due for renewal at `now`.
pub fn due(not_after: Option<DateTime<Utc>>, now: DateTime<Utc>, renew_before: std::time::Duration) -> bool {
    match (not_after, chrono::Duration::from_std(renew_before)) {
        (Some(t), Ok(before)) => t - now <= before,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renewal_is_due_inside_the_window_only() {
        let now = Utc::now();
        let month = Duration::from_secs(30 * 86_400);
        assert!(!due(None, now, month), "unknown expiry: nothing to renew automatically");
        assert!(!due(Some(now + chrono::Duration::days(31)), now, month));
        assert!(due(Some(now + chrono::Duration::days(29)), now, month));
        assert!(due(Some(now - chrono::Duration::days(1)), now, month), "expired: renew");
    }
}
