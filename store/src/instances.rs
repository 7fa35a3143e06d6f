//! Instances as the state database keeps them: the row, its columns, and the API model.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dbaas_client::{
    Environment, HealthStatus, Instance, InstanceHealth, InstanceKind, InstanceStatus, ManagedDetails, SslMode,
};

pub const INSTANCE_COLUMNS: &str = "i.id, i.name, i.kind, i.host, i.port, i.public_host, i.admin_user, \
    i.admin_password_enc, i.sslmode, i.ca_cert, i.environment, i.labels, i.max_databases, \
    i.allowed_extensions, i.server_version, i.maintenance_window, i.version, i.created_at, \
    (SELECT count(*) FROM databases d WHERE d.instance_id = i.id AND d.status <> 'deleted') AS database_count, \
    i.status, i.host_id, (SELECT name FROM hosts WHERE id = i.host_id) AS host_name, i.pg_version, i.settings, \
    i.dedicated_tenant_id, (SELECT name FROM tenants WHERE id = i.dedicated_tenant_id) AS dedicated_tenant, \
    i.protected, i.auto_restart, i.health, i.health_message, i.health_checked_at, i.last_operation_id, i.managed, i.cert_not_after, \
    i.repo_key_enc, i.archiving";

/// What a managed instance keeps about itself (`instances.managed`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ManagedState {
    pub data_dir: String,
    #[serde(default)]
    pub ready_in_ms: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: uuid::Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: InstanceKind,
    pub host: String,
    pub port: i32,
    pub public_host: String,
    pub admin_user: String,
    pub admin_password_enc: Vec<u8>,
    #[sqlx(try_from = "String")]
    pub sslmode: SslMode,
    pub ca_cert: Option<String>,
    #[sqlx(try_from = "String")]
    pub environment: Environment,
    pub labels: sqlx::types::Json<BTreeMap<String, String>>,
    pub max_databases: i32,
    pub allowed_extensions: Vec<String>,
    pub server_version: String,
    pub maintenance_window: Option<sqlx::types::Json<dbaas_client::MaintenanceWindow>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub database_count: i64,
    #[sqlx(try_from = "String")]
    pub status: InstanceStatus,
    pub host_id: Option<uuid::Uuid>,
    pub host_name: Option<String>,
    pub pg_version: Option<String>,
    pub settings: sqlx::types::Json<BTreeMap<String, String>>,
    pub dedicated_tenant_id: Option<uuid::Uuid>,
    pub dedicated_tenant: Option<String>,
    pub protected: bool,
    pub auto_restart: bool,
    #[sqlx(try_from = "Option<String>")]
    pub health: Health,
    pub health_message: Option<String>,
    pub health_checked_at: Option<DateTime<Utc>>,
    pub last_operation_id: Option<uuid::Uuid>,
    pub managed: Option<sqlx::types::Json<ManagedState>>,
    pub cert_not_after: Option<DateTime<Utc>>,
    /// The pgBackRest repository's cipher pass, encrypted (context `pitr-repo:<id>`).
    pub repo_key_enc: Option<Vec<u8>>,
    #[sqlx(try_from = "String")]
    pub archiving: dbaas_client::ArchivingState,
}

/// The `health` column, decoded strictly (NULL until the first check).
#[derive(Debug, Clone, Copy, Default)]
pub struct Health(pub Option<HealthStatus>);

impl TryFrom<Option<String>> for Health {
    type Error = dbaas_client::UnknownValue;
    fn try_from(v: Option<String>) -> Result<Self, Self::Error> {
        v.map(HealthStatus::try_from).transpose().map(Health)
    }
}

impl InstanceRow {
    pub fn environment(&self) -> Environment {
        self.environment
    }

    pub fn is_managed(&self) -> bool {
        self.kind == InstanceKind::Managed
    }

    pub fn status(&self) -> InstanceStatus {
        self.status
    }

    pub fn managed_state(&self) -> ManagedState {
        self.managed.as_ref().map(|m| m.0.clone()).unwrap_or_default()
    }

    pub fn to_model(&self) -> Instance {
        let managed = self.is_managed().then(|| ManagedDetails {
            host: self.host_name.clone().unwrap_or_default(),
            version: self.pg_version.clone().unwrap_or_default(),
            data_dir: self.managed_state().data_dir,
            settings: self.settings.0.clone(),
            auto_restart: self.auto_restart,
            health: match (self.health.0, self.health_checked_at) {
                (Some(status), Some(at)) => {
                    Some(InstanceHealth { status, message: self.health_message.clone(), checked_at: at })
                }
                _ => None,
            },
            ready_in_ms: self.managed_state().ready_in_ms,
            certificate_expires_at: self.cert_not_after,
        });
        Instance {
            id: self.id,
            name: self.name.clone(),
            kind: if self.is_managed() { InstanceKind::Managed } else { InstanceKind::External },
            status: self.status(),
            dedicated_tenant: self.dedicated_tenant.clone(),
            protected: self.protected,
            managed,
            last_operation_id: self.last_operation_id,
            host: self.host.clone(),
            port: self.port as u16,
            public_host: self.public_host.clone(),
            admin_user: self.admin_user.clone(),
            sslmode: self.sslmode,
            ca_cert: self.ca_cert.clone(),
            environment: self.environment(),
            labels: self.labels.0.clone(),
            max_databases: self.max_databases,
            database_count: self.database_count,
            allowed_extensions: self.allowed_extensions.clone(),
            server_version: self.server_version.clone(),
            maintenance_window: self.maintenance_window.as_ref().map(|w| w.0.clone()),
            version: self.version,
            created_at: self.created_at,
        }
    }
}

/// A live (not deleted) instance by name.
pub async fn by_name(db: &sqlx::PgPool, name: &str) -> Result<Option<InstanceRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.name = $1 AND i.status <> 'deleted'"))
        .bind(name)
        .fetch_optional(db)
        .await
}
