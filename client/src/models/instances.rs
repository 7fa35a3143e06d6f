//! Instances: PostgreSQL servers databases are placed on.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum InstanceKind {
    /// An existing server registered with an admin login.
    External,
    /// A server this service provisions on a host.
    Managed,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: InstanceKind,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Host name handed to clients in connection URIs, when it differs from `host`.
    #[serde(default)]
    pub public_host: Option<String>,
    pub admin_user: String,
    pub admin_password: String,
    /// TLS mode the service uses to reach the instance.
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM CA certificate of the instance, offered to clients for `verify-full`.
    #[serde(default)]
    pub ca_cert: Option<String>,
    pub environment: Environment,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Capacity: how many databases this instance may hold.
    #[serde(default = "default_capacity")]
    pub max_databases: i32,
    /// Extensions tenants may request on this instance.
    #[serde(default)]
    pub allowed_extensions: Vec<String>,
}

fn default_kind() -> InstanceKind {
    InstanceKind::External
}
fn default_port() -> u16 {
    5432
}
fn default_capacity() -> i32 {
    100
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateInstance {
    pub version: Option<i64>,
    pub admin_password: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub max_databases: Option<i32>,
    pub allowed_extensions: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Instance {
    pub id: Uuid,
    pub name: String,
    pub kind: InstanceKind,
    pub host: String,
    pub port: u16,
    pub public_host: String,
    pub admin_user: String,
    pub sslmode: SslMode,
    pub ca_cert: Option<String>,
    pub environment: Environment,
    pub labels: BTreeMap<String, String>,
    pub max_databases: i32,
    pub database_count: i64,
    pub allowed_extensions: Vec<String>,
    pub server_version: String,
    /// Scheduled maintenance starts only inside this window (none: any time).
    #[serde(default)]
    pub maintenance_window: Option<MaintenanceWindow>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}
