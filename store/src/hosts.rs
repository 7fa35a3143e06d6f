//! Registered hosts: their rows and queries (the private key stays encrypted in the row).

use chrono::{DateTime, Utc};
use dbaas_client::{Host, HostKind, PgVersion};
use uuid::Uuid;

pub const HOST_COLUMNS: &str = "h.id, h.name, h.kind, h.address, h.ssh_port, h.ssh_user, h.ssh_private_key_enc, \
    h.ssh_known_host_key, h.data_root, h.port_range_start, h.port_range_end, h.pg_versions, h.version, h.created_at, \
    h.proxy_port, h.proxy_ca_cert, h.proxy_ca_key_enc, h.proxy_cert_not_after, h.proxy_cert_names, h.proxy_cert_tag, h.proxy_health, h.proxy_message";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HostRecord {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: HostKind,
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
    pub created_at: DateTime<Utc>,
    pub proxy_port: Option<i32>,
    pub proxy_ca_cert: Option<String>,
    pub proxy_ca_key_enc: Option<Vec<u8>>,
    pub proxy_cert_not_after: Option<DateTime<Utc>>,
    pub proxy_cert_names: Option<Vec<String>>,
    pub proxy_cert_tag: Option<String>,
    pub proxy_health: String,
    pub proxy_message: Option<String>,
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
        self.kind == HostKind::Ssh
    }

    /// The address instances on this host are reached at.
    pub fn instance_address(&self) -> String {
        self.address.clone().unwrap_or_else(|| "127.0.0.1".into())
    }

    /// The routing proxy's directory on the host.
    pub fn proxy_dir(&self) -> String {
        format!("{}/.proxy", self.data_root)
    }

    /// The server binaries of a major version, as registration found them.
    pub fn bin_dir(&self, version: &str) -> Option<String> {
        self.pg_versions.0.iter().find(|v| v.version == version).map(|v| v.bin_dir.clone())
    }

    /// What the API shows of a host (never its private key).
    pub fn view(&self) -> Host {
        Host {
            id: self.id,
            name: self.name.clone(),
            kind: self.kind,
            address: self.address.clone(),
            ssh_port: self.ssh_port.map(|p| p as u16),
            ssh_user: self.ssh_user.clone(),
            ssh_known_host_key: self.ssh_known_host_key.clone(),
            data_root: self.data_root.clone(),
            port_range: [self.port_range_start as u16, self.port_range_end as u16],
            pg_versions: self.pg_versions.0.clone(),
            proxy_port: self.proxy_port.map(|p| p as u16),
            proxy_ca_cert: self.proxy_ca_cert.clone(),
            proxy_health: match (self.proxy_port, self.proxy_health.as_str()) {
                (Some(_), "healthy") => Some(dbaas_client::HealthStatus::Healthy),
                (Some(_), "down") => Some(dbaas_client::HealthStatus::Down),
                // 'unknown' (the column's CHECK allows nothing else): not checked yet.
                _ => None,
            },
            proxy_message: self.proxy_message.clone(),
            version: self.version,
            created_at: self.created_at,
        }
    }
}

pub async fn list(db: &sqlx::PgPool) -> Result<Vec<HostRecord>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {HOST_COLUMNS} FROM hosts h ORDER BY h.name")).fetch_all(db).await
}

pub async fn exists(db: &sqlx::PgPool, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM hosts WHERE name = $1)").bind(name).fetch_one(db).await
}

/// Instances on the host that are not deleted.
pub async fn live_instances(db: &sqlx::PgPool, id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM instances WHERE host_id = $1 AND status <> 'deleted'")
        .bind(id)
        .fetch_one(db)
        .await
}

/// Deletes the host; when deleted instances still point at it (their history), it is only
/// forgotten by name (renamed out of the way).
pub async fn delete(db: &sqlx::PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    let n =
        sqlx::query("DELETE FROM hosts h WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM instances WHERE host_id = h.id)")
            .bind(id)
            .execute(db)
            .await?
            .rows_affected();
    if n == 0 {
        sqlx::query("UPDATE hosts SET name = left(name, 20) || '-deleted-' || left(replace(id::text, '-', ''), 8) WHERE id = $1")
            .bind(id)
            .execute(db)
            .await?;
    }
    Ok(())
}
