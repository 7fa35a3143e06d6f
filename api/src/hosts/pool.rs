//! Registered hosts as the workers see them, and one reusable connection per host.

use std::collections::HashMap;
use std::sync::Arc;

use dbaas_client::PgVersion;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::executor::{ExecError, HostExec, LocalExecutor};
use super::ssh::{SshExecutor, SshTarget};
use crate::crypto::MasterKey;

pub const HOST_COLUMNS: &str = "h.id, h.name, h.kind, h.address, h.ssh_port, h.ssh_user, h.ssh_private_key_enc, \
    h.ssh_known_host_key, h.data_root, h.port_range_start, h.port_range_end, h.pg_versions, h.version";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HostRecord {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub address: Option<String>,
    pub ssh_port: Option<i32>,
    pub ssh_user: Option<String>,
    pub ssh_private_key_enc: Option<Vec<u8>>,
    pub ssh_known_host_key: Option<String>,
    pub data_root: String,
    pub port_range_start: i32,
    pub port_range_end: i32,
    pub pg_versions: sqlx::types::Json<Vec<PgVersion>>,
    pub version: i64,
}

impl HostRecord {
    pub async fn load<'e>(db: impl sqlx::PgExecutor<'e>, id: Uuid) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {HOST_COLUMNS} FROM hosts h WHERE h.id = $1")).bind(id).fetch_optional(db).await
    }

    pub async fn by_name<'e>(db: impl sqlx::PgExecutor<'e>, name: &str) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {HOST_COLUMNS} FROM hosts h WHERE h.name = $1"))
            .bind(name)
            .fetch_optional(db)
            .await
    }

    pub fn is_ssh(&self) -> bool {
        self.kind == "ssh"
    }

    /// The address instances on this host are reached at.
    pub fn instance_address(&self) -> String {
        self.address.clone().unwrap_or_else(|| "127.0.0.1".into())
    }

    /// The server binaries of a major version, as registration found them.
    pub fn bin_dir(&self, version: &str) -> Option<String> {
        self.pg_versions.0.iter().find(|v| v.version == version).map(|v| v.bin_dir.clone())
    }

    fn ssh_target(&self, key: &MasterKey) -> Result<SshTarget, ExecError> {
        let enc = self
            .ssh_private_key_enc
            .as_deref()
            .ok_or_else(|| ExecError::Unreachable("no private key stored".into()))?;
        let private_key = key
            .decrypt(enc, &format!("host:{}", self.id))
            .map_err(|e| ExecError::Unreachable(format!("decrypting the host's private key: {e}")))?;
        Ok(SshTarget {
            address: self.address.clone().unwrap_or_default(),
            port: self.ssh_port.unwrap_or(22) as u16,
            user: self.ssh_user.clone().unwrap_or_else(|| "root".into()),
            private_key,
            known_host_key: self.ssh_known_host_key.clone().unwrap_or_default(),
        })
    }
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
        let exec = Arc::new(HostExec::Ssh(SshExecutor::connect(&host.ssh_target(key)?).await?));
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
