//! Registering a host: every field checked, then the machine itself (reachable with the
//! right key, its ephemeral port range, a usable data root, PostgreSQL binaries), then the row.

use dbaas_client::{CreateHost, Host, HostKind};
use uuid::Uuid;

use super::executor::{ExecError, LocalExecutor};
use super::ssh::{check_private_key, parse_host_key, SshTarget};
use super::HostExec;
use super::{discover_versions, ephemeral_ports, prepare_data_root, validate_data_root, HostPool, HostRecord};
use crate::crypto::MasterKey;
use crate::error::{ApiError, ApiResult, FieldErrors};
use dbaas_store::hosts;
use dbaas_store::naming::{valid_host, validate_instance_name};

/// Instance ports when the request names none.
const DEFAULT_PORTS: [u16; 2] = [5500, 5599];

/// Validates, checks the host for real, and records it (`POST /v1/hosts`, and `dev`).
pub async fn register(db: &sqlx::PgPool, key: &MasterKey, req: CreateHost) -> ApiResult<Host> {
    let mut errs = FieldErrors::default();
    errs.check("name", "invalid_name", validate_instance_name(&req.name));
    errs.check("data_root", "invalid_path", validate_data_root(&req.data_root));
    let [lo, hi] = req.port_range.unwrap_or(DEFAULT_PORTS);
    if lo < 1024 || lo > hi || hi - lo > 10_000 {
        errs.add(
            "port_range",
            "invalid_range",
            "must be [start, end] with 1024 <= start <= end and at most 10000 ports",
        );
    }
    if let Some(p) = req.proxy_port {
        check_proxy_port(&mut errs, p, [lo, hi], &req.data_root);
    }
    let ssh_target = match req.kind {
        HostKind::Local => {
            for (f, v) in [
                ("address", req.address.is_some()),
                ("ssh_port", req.ssh_port.is_some()),
                ("ssh_user", req.ssh_user.is_some()),
                ("ssh_private_key", req.ssh_private_key.is_some()),
                ("ssh_known_host_key", req.ssh_known_host_key.is_some()),
            ] {
                if v {
                    errs.add(f, "not_for_local", "only ssh hosts take connection settings");
                }
            }
            None
        }
        HostKind::Ssh => ssh_target(&req, &mut errs),
    };
    errs.into_result()?;
    if hosts::exists(db, &req.name).await? {
        return Err(ApiError::Conflict("already_exists", format!("host {:?} already exists", req.name)));
    }

    // Registration checks the host for real: reachable (with the right key), a usable data
    // root and PostgreSQL binaries.
    let exec = match &ssh_target {
        None => HostExec::Local(LocalExecutor::default()),
        Some(t) => HostPool::probe(t).await.map_err(|e| match e {
            ExecError::HostKeyMismatch(m) => ApiError::field(
                "ssh_known_host_key",
                "host_key_mismatch",
                format!("the host presented another key than ssh_known_host_key: {m}"),
            ),
            other => ApiError::field("address", "host_unreachable", format!("cannot log in over SSH: {other}")),
        })?,
    };
    let ephemeral = ephemeral_ports(&exec).await.map_err(|e| {
        ApiError::Unprocessable("host_check_failed", format!("reading the host's ephemeral port range failed: {e}"))
    })?;
    if let Some(p) = req.proxy_port {
        outside_ephemeral(p, &ephemeral)?;
    }
    if lo <= *ephemeral.end() && *ephemeral.start() <= hi {
        return Err(ApiError::field(
            "port_range",
            "overlaps_ephemeral_ports",
            format!(
                "{lo}-{hi} overlaps the host's ephemeral port range {}-{} (net.ipv4.ip_local_port_range): \
                 outgoing connections take those ports and would keep servers from listening on them",
                ephemeral.start(),
                ephemeral.end()
            ),
        ));
    }
    prepare_data_root(&exec, &req.data_root).await.map_err(|e| {
        ApiError::field("data_root", "unusable", format!("the postgres user cannot use {}: {e}", req.data_root))
    })?;
    let versions = discover_versions(&exec).await.map_err(|e| {
        ApiError::Unprocessable("host_check_failed", format!("looking for PostgreSQL on the host failed: {e}"))
    })?;
    if versions.is_empty() {
        return Err(ApiError::Unprocessable(
            "no_postgresql",
            "no PostgreSQL server binaries found on the host (pg_config under /usr/lib/postgresql/<version>/bin)"
                .into(),
        ));
    }
    let id = Uuid::new_v4();
    // The proxy's CA: made here (no host work), so connection details can hand it out as
    // soon as a database is routed.
    let proxy_ca = match req.proxy_port {
        Some(_) => Some(proxy_ca(&req.name)?),
        None => None,
    };
    sqlx::query(
        "INSERT INTO hosts (id, name, kind, data_root, port_range_start, port_range_end, pg_versions, \
         address, ssh_port, ssh_user, ssh_private_key_enc, ssh_known_host_key, proxy_port, proxy_ca_cert, \
         proxy_ca_key_enc) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(id)
    .bind(&req.name)
    .bind(if ssh_target.is_some() { "ssh" } else { "local" })
    .bind(&req.data_root)
    .bind(i32::from(lo))
    .bind(i32::from(hi))
    .bind(sqlx::types::Json(&versions))
    .bind(ssh_target.as_ref().map(|t| &t.address))
    .bind(ssh_target.as_ref().map(|t| i32::from(t.port)))
    .bind(ssh_target.as_ref().map(|t| &t.user))
    .bind(ssh_target.as_ref().map(|t| key.encrypt(&t.private_key, &format!("host:{id}"))))
    .bind(ssh_target.as_ref().map(|t| &t.known_host_key))
    .bind(req.proxy_port.map(i32::from))
    .bind(proxy_ca.as_ref().map(|c| &c.cert_pem))
    .bind(proxy_ca.as_ref().map(|c| key.encrypt(&c.key_pem, &format!("proxy-ca:{id}"))))
    .execute(db)
    .await?;
    let row = HostRecord::by_name(db, &req.name).await?.ok_or(ApiError::NotFound("host"))?;
    Ok(row.view())
}

/// The connection settings of an ssh host, each checked (they reach the ssh command line).
fn ssh_target(req: &CreateHost, errs: &mut FieldErrors) -> Option<SshTarget> {
    let address = req.address.clone().unwrap_or_default();
    if !valid_host(&address) {
        errs.add("address", "invalid_host", "an ssh host needs its host name or IP address");
    }
    let user = req.ssh_user.clone().unwrap_or_else(|| "root".into());
    let user_ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !user_ok {
        errs.add("ssh_user", "invalid_user", "a login name: letters, digits, '_', '-', '.'");
    }
    if req.ssh_port == Some(0) {
        errs.add("ssh_port", "out_of_range", "must be 1-65535");
    }
    let key = req.ssh_private_key.clone().unwrap_or_default();
    errs.check("ssh_private_key", "invalid_key", check_private_key(&key));
    let host_key = match parse_host_key(req.ssh_known_host_key.as_deref().unwrap_or_default()) {
        Ok(k) => k,
        Err(e) => {
            errs.add("ssh_known_host_key", "invalid_key", e);
            String::new()
        }
    };
    Some(SshTarget { address, port: req.ssh_port.unwrap_or(22), user, private_key: key, known_host_key: host_key })
}

/// A proxy port: not privileged, outside the instances' ports, and a data root short
/// enough for the console's socket (`<data_root>/.proxy/run/.s.PGSQL.<port>` within the
/// 107 bytes of a unix socket path).
fn check_proxy_port(errs: &mut FieldErrors, p: u16, [lo, hi]: [u16; 2], data_root: &str) {
    if p < 1024 {
        errs.add("proxy_port", "out_of_range", "must be 1024-65535");
    } else if (lo..=hi).contains(&p) {
        errs.add("proxy_port", "inside_port_range", format!("{p} lies inside the instances' port range {lo}-{hi}"));
    }
    if data_root.len() + 30 > 107 {
        errs.add("data_root", "too_long_for_proxy", "at most 77 characters on a host that runs a proxy");
    }
}

fn outside_ephemeral(p: u16, ephemeral: &std::ops::RangeInclusive<u16>) -> ApiResult<()> {
    if !ephemeral.contains(&p) {
        return Ok(());
    }
    Err(ApiError::field(
        "proxy_port",
        "overlaps_ephemeral_ports",
        format!(
            "{p} lies in the host's ephemeral port range {}-{} (net.ipv4.ip_local_port_range)",
            ephemeral.start(),
            ephemeral.end()
        ),
    ))
}

fn proxy_ca(host: &str) -> ApiResult<super::tlsgen::CaPem> {
    Ok(super::tlsgen::new_ca(&super::tlsgen::proxy_ca_name(host))
        .map_err(|e| anyhow::anyhow!("making the proxy's CA: {e}"))?)
}

/// Gives a registered host a proxy on `port` (checked as at registration, the ephemeral
/// range read from the host), with a CA of its own if it has none yet.
pub async fn set_proxy_port(
    db: &sqlx::PgPool,
    key: &MasterKey,
    host: &HostRecord,
    exec: &HostExec,
    port: u16,
) -> ApiResult<()> {
    let mut errs = FieldErrors::default();
    check_proxy_port(&mut errs, port, [host.port_range_start as u16, host.port_range_end as u16], &host.data_root);
    errs.into_result()?;
    let ephemeral = ephemeral_ports(exec).await.map_err(|e| {
        ApiError::Unprocessable("host_check_failed", format!("reading the host's ephemeral port range failed: {e}"))
    })?;
    outside_ephemeral(port, &ephemeral)?;
    let ca = match host.proxy_ca_key_enc {
        Some(_) => None,
        None => Some(proxy_ca(&host.name)?),
    };
    sqlx::query(
        "UPDATE hosts SET proxy_port = $2, proxy_ca_cert = coalesce($3, proxy_ca_cert), \
         proxy_ca_key_enc = coalesce($4, proxy_ca_key_enc), proxy_health = 'unknown', version = version + 1 WHERE id = $1",
    )
    .bind(host.id)
    .bind(i32::from(port))
    .bind(ca.as_ref().map(|c| &c.cert_pem))
    .bind(ca.as_ref().map(|c| key.encrypt(&c.key_pem, &format!("proxy-ca:{}", host.id))))
    .execute(db)
    .await?;
    Ok(())
}
