//! Registered hosts as the workers see them, and one reusable connection per host.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use uuid::Uuid;

use super::ssh::{SshExecutor, SshTarget};
use crate::executor::{ExecError, LocalExecutor};
use crate::host_exec::HostExec;
use dbaas_crypto::MasterKey;
use dbaas_store::hosts::HostRecord;

/// Where and how to reach an SSH host, its private key opened.
fn ssh_target(host: &HostRecord, key: &MasterKey) -> Result<SshTarget, ExecError> {
    let enc =
        host.ssh_private_key_enc.as_deref().ok_or_else(|| ExecError::Unreachable("no private key stored".into()))?;
    let private_key = key
        .decrypt(enc, &format!("host:{}", host.id))
        .map_err(|e| ExecError::Unreachable(format!("decrypting the host's private key: {e}")))?;
    Ok(SshTarget {
        address: host.address.clone().unwrap_or_default(),
        port: host.ssh_port.unwrap_or(22) as u16,
        user: host.ssh_user.clone().unwrap_or_else(|| "root".into()),
        private_key,
        known_host_key: host.ssh_known_host_key.clone().unwrap_or_default(),
    })
}

/// Connections to hosts, reused across operations. An SSH connection is checked before reuse
/// and replaced when it died or the host's registration changed.
///
/// Each host has its own slot and lock: connecting to a slow or unreachable host (up to the
/// connect timeout) holds only that host's lock, never the other hosts' operations. The map
/// itself is locked just long enough to find the slot.
#[derive(Default)]
pub struct HostPool {
    slots: std::sync::Mutex<HashMap<Uuid, Slot>>,
}

/// One host's connection, with the host row version it was made for.
type Slot = Arc<Mutex<Option<(i64, Arc<HostExec>)>>>;

impl HostPool {
    fn slot(&self, id: Uuid) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(id).or_default().clone()
    }

    pub async fn get(&self, host: &HostRecord, key: &MasterKey) -> Result<Arc<HostExec>, ExecError> {
        if !host.is_ssh() {
            return Ok(Arc::new(HostExec::Local(LocalExecutor::default())));
        }
        let slot = self.slot(host.id);
        let mut conn = slot.lock().await;
        if let Some((version, exec)) = conn.as_ref() {
            if *version == host.version {
                if let HostExec::Ssh(s) = exec.as_ref() {
                    if s.alive().await {
                        return Ok(exec.clone());
                    }
                }
            }
        }
        let exec = Arc::new(HostExec::Ssh(SshExecutor::connect(&ssh_target(host, key)?).await?));
        *conn = Some((host.version, exec.clone()));
        Ok(exec)
    }

    /// Connects once without keeping the connection (registration checks).
    pub async fn probe(target: &SshTarget) -> Result<HostExec, ExecError> {
        Ok(HostExec::Ssh(SshExecutor::connect(target).await?))
    }

    pub async fn forget(&self, id: Uuid) {
        let slot = self.slots.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        if let Some(slot) = slot {
            *slot.lock().await = None;
        }
    }
}
