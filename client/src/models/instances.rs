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

impl std::str::FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!("unknown sslmode {other:?}")),
        }
    }
}

/// postgresql.conf parameters of a managed instance. Values may be given as strings, numbers
/// or booleans; they are kept as PostgreSQL reads them (strings).
pub type Settings = BTreeMap<String, String>;

fn settings_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Settings, D::Error> {
    let raw: BTreeMap<String, serde_json::Value> = Deserialize::deserialize(d)?;
    scalars_to_strings::<D>(raw)
}

fn scalars_to_strings<'de, D: serde::Deserializer<'de>>(
    raw: BTreeMap<String, serde_json::Value>,
) -> Result<Settings, D::Error> {
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, if b { "on" } else { "off" }.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "setting {k:?}: expected a string, number or boolean, got {other}"
            ))),
        })
        .collect()
}

fn opt_settings_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Settings>, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Deserialize::deserialize(d)?;
    raw.map(scalars_to_strings::<D>).transpose()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    /// Lower-case letters, digits and single '-' inside, starting with a letter; at most 40.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z](-?[a-z0-9])*$", min_length = 1, max_length = 40))]
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: InstanceKind,
    /// external: the server's host name or address. managed: the name of a registered host.
    pub host: String,
    /// external: the server's port (default 5432). managed: optional, else allocated from the
    /// host's port range.
    #[serde(default)]
    pub port: Option<u16>,
    /// Host name handed to clients in connection URIs, when it differs from the address.
    #[serde(default)]
    pub public_host: Option<String>,
    /// external: a login with CREATEDB and CREATEROLE (or SUPERUSER). managed: not accepted
    /// (the service creates its own admin role).
    #[serde(default)]
    pub admin_user: Option<String>,
    #[serde(default)]
    pub admin_password: Option<String>,
    /// external: TLS mode the service uses to reach the instance (managed: always verify-full).
    #[serde(default)]
    pub sslmode: SslMode,
    /// external: PEM CA certificate of the instance, offered to clients for `verify-full`.
    #[serde(default)]
    pub ca_cert: Option<String>,
    /// managed: PostgreSQL major version, one of the host's (e.g. `15`).
    #[serde(default)]
    pub version: Option<String>,
    /// managed: postgresql.conf parameters, checked by the server binary itself.
    #[serde(default, deserialize_with = "settings_de")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub settings: Settings,
    /// Only this tenant's databases may be placed here (a cluster per tenant); none: shared.
    #[serde(default)]
    pub dedicated_tenant: Option<String>,
    /// A protected instance is never deleted, not even by a forced delete.
    #[serde(default)]
    pub protected: bool,
    /// managed: restart the cluster when the health check finds it down (default true).
    #[serde(default = "default_true")]
    pub auto_restart: bool,
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

impl CreateInstance {
    /// An existing server reached with an admin login; other fields at their defaults.
    pub fn external(name: &str, host: &str, port: u16, user: &str, password: &str, env: Environment) -> Self {
        Self {
            admin_user: Some(user.into()),
            admin_password: Some(password.into()),
            port: Some(port),
            ..Self::managed(name, host, "", env)
        }
        .with_kind(InstanceKind::External)
    }

    /// A cluster to provision on the registered host `host`; other fields at their defaults.
    pub fn managed(name: &str, host: &str, version: &str, env: Environment) -> Self {
        Self {
            name: name.into(),
            kind: InstanceKind::Managed,
            host: host.into(),
            port: None,
            public_host: None,
            admin_user: None,
            admin_password: None,
            sslmode: SslMode::default(),
            ca_cert: None,
            version: (!version.is_empty()).then(|| version.to_string()),
            settings: Settings::new(),
            dedicated_tenant: None,
            protected: false,
            auto_restart: true,
            environment: env,
            labels: BTreeMap::new(),
            max_databases: default_capacity(),
            allowed_extensions: Vec::new(),
        }
    }

    fn with_kind(mut self, kind: InstanceKind) -> Self {
        self.kind = kind;
        self
    }
}

fn default_kind() -> InstanceKind {
    InstanceKind::External
}
fn default_true() -> bool {
    true
}
fn default_capacity() -> i32 {
    100
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateInstance {
    pub version: Option<i64>,
    /// external: a new password for the admin login (checked before it is kept).
    pub admin_password: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub max_databases: Option<i32>,
    pub allowed_extensions: Option<Vec<String>>,
    /// managed: the whole new set of settings. Applied by reload, or by a restart when a
    /// changed parameter needs one (reported in the operation's log).
    #[serde(default, deserialize_with = "opt_settings_de")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, String>>))]
    pub settings: Option<Settings>,
    pub protected: Option<bool>,
    pub auto_restart: Option<bool>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum InstanceStatus {
    /// A managed instance being created (see its operation).
    Provisioning,
    /// Serving; databases may be placed here.
    Ready,
    /// Stopped on request.
    Stopped,
    /// Provisioning failed (nothing was left on the host), or a delete failed.
    Failed,
    Deleting,
    Deleted,
    /// A point-in-time restore of the whole instance is running (see its operation).
    Restoring,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
            Self::Restoring => "restoring",
        }
    }
}

impl std::str::FromStr for InstanceStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "provisioning" => Self::Provisioning,
            "ready" => Self::Ready,
            "stopped" => Self::Stopped,
            "failed" => Self::Failed,
            "deleting" => Self::Deleting,
            "deleted" => Self::Deleted,
            "restoring" => Self::Restoring,
            other => return Err(format!("unknown instance status {other:?}")),
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    /// The server did not answer the last check.
    Down,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct InstanceHealth {
    pub status: HealthStatus,
    #[serde(default)]
    pub message: Option<String>,
    pub checked_at: DateTime<Utc>,
}

/// What only a managed instance has.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ManagedDetails {
    /// The registered host it runs on.
    pub host: String,
    /// PostgreSQL major version.
    pub version: String,
    pub data_dir: String,
    pub settings: Settings,
    pub auto_restart: bool,
    /// The last periodic health check.
    #[serde(default)]
    pub health: Option<InstanceHealth>,
    /// Milliseconds from the create request to ready.
    #[serde(default)]
    pub ready_in_ms: Option<i64>,
    /// When the server certificate it presents expires (renewed automatically before).
    #[serde(default)]
    pub certificate_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum InstanceActionKind {
    Start,
    Stop,
    Restart,
    /// Issues a new server certificate from the instance's CA and reloads (no restart).
    #[serde(rename = "renew_certificate")]
    RenewCertificate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InstanceAction {
    pub action: InstanceActionKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Instance {
    pub id: Uuid,
    pub name: String,
    pub kind: InstanceKind,
    pub status: InstanceStatus,
    /// Address the service connects to (a tenant's view shows `public_host` here).
    pub host: String,
    pub port: u16,
    pub public_host: String,
    /// The service's login on the instance; empty in a tenant's view.
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
    #[serde(default)]
    pub dedicated_tenant: Option<String>,
    #[serde(default)]
    pub protected: bool,
    /// Managed instances' details (host, data directory, settings); admins only.
    #[serde(default)]
    pub managed: Option<ManagedDetails>,
    /// The latest operation on this instance (provision, settings, start/stop, delete).
    #[serde(default)]
    pub last_operation_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}
