//! The server of a managed instance as operations reach it: the instance and its node on the
//! host, its configuration files, starting it patiently, and the check that the service
//! connects. Shared by the instance steps ([`super::ops`]) and point-in-time recovery
//! ([`super::pitr`]).

use std::time::Duration;

use dbaas_client::Settings;

use super::node::Node;
use super::settings::{render_conf, HBA};
use dbaas_domain::catalog::conn::{InstanceRow, InstanceTarget, MAINTENANCE_DB};
use dbaas_domain::catalog::record::load_instance;
use dbaas_domain::operation::OpContext;
use dbaas_domain::state::AppState;
use dbaas_engine::OpError;
use dbaas_hosts::executor::ExecError;
use dbaas_hosts::HostRecord;

/// The instance and its node on the host.
pub(crate) async fn load(ctx: &OpContext) -> Result<(InstanceRow, Node), OpError> {
    let inst = load_instance(&ctx.state.db, ctx.op.target_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the instance record is gone"))?;
    let node = node_of(&ctx.state, &inst).await?;
    Ok((inst, node))
}

/// Where a managed instance lives, with a connection to its host.
pub async fn node_of(s: &AppState, inst: &InstanceRow) -> Result<Node, OpError> {
    let host_id = inst.host_id.ok_or_else(|| OpError::permanent("not_managed", "the instance has no host"))?;
    let host = HostRecord::load(&s.db, host_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the host record is gone"))?;
    let version = inst.pg_version.clone().unwrap_or_default();
    let bin = host.bin_dir(&version).ok_or_else(|| {
        OpError::permanent("unknown_version", format!("PostgreSQL {version} is not on host {}", host.name))
    })?;
    let exec = s.hosts.get(&host, &s.key).await?;
    Ok(Node { exec, name: inst.name.clone(), port: inst.port as u16, dir: inst.managed_state().data_dir, bin, host })
}

/// `dbaas.conf` (the service's lines, archiving when `archiving` is given, then the
/// instance's settings), `pg_hba.conf`, and the include in `postgresql.conf`.
pub(crate) async fn write_config(node: &Node, settings: &Settings, archiving: Option<&str>) -> Result<(), OpError> {
    let data = node.data();
    node.write_file(&format!("{data}/dbaas.conf"), &render_conf(node, settings, archiving), "0600").await?;
    node.write_file(&format!("{data}/pg_hba.conf"), HBA, "0600").await?;
    let main = format!("{data}/postgresql.conf");
    let text = node.read_file(&main).await?;
    if !text.contains("include = 'dbaas.conf'") {
        node.write_file(
            &main,
            &format!("{text}\n# Managed by dbaas-api: this include comes last and wins.\ninclude = 'dbaas.conf'\n"),
            "0600",
        )
        .await?;
    }
    Ok(())
}

/// Connects as the service (the server is up and our login works).
pub(crate) async fn check_ready(ctx: &OpContext, inst: &InstanceRow) -> Result<(), OpError> {
    let mut conn = inst.target(&ctx.state.key)?.connect(MAINTENANCE_DB).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    ctx.log("info", "the server accepts connections").await;
    Ok(())
}

/// Starts the server; while another socket holds its port or the dead server before it is
/// not reaped (see `Node::start`), tries again for a little over a TIME_WAIT period before
/// giving up, retryably.
pub(crate) async fn start_patiently(ctx: &OpContext, node: &Node) -> Result<(), OpError> {
    const TRIES: u32 = 6;
    let mut attempt = 1;
    loop {
        match node.start().await {
            Err(e @ (ExecError::PortUnavailable(_) | ExecError::NotReaped(_))) if attempt < TRIES => {
                ctx.log("warn", &format!("{e}; trying again in 15 s")).await;
                tokio::time::sleep(Duration::from_secs(15)).await;
                attempt += 1;
            }
            r => return Ok(r?),
        }
    }
}
