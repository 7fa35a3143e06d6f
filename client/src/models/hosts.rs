//! Hosts where managed instances are provisioned.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    /// The API's own machine.
    Local,
    /// A machine reached over SSH.
    Ssh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateHost {
    pub name: String,
    pub kind: HostKind,
    /// ssh: address of the machine.
    #[serde(default)]
    pub address: Option<String>,
    /// ssh: port (default 22).
    #[serde(default)]
    pub ssh_port: Option<u16>,
    #[serde(default)]
    pub ssh_user: Option<String>,
    /// ssh: private key (PEM/OpenSSH), stored encrypted.
    #[serde(default)]
    pub ssh_private_key: Option<String>,
    /// ssh: the host's public key line, checked on every connection.
    #[serde(default)]
    pub ssh_known_host_key: Option<String>,
    /// Absolute directory under which instance data directories are created.
    pub data_root: String,
    /// Ports instances may use, inclusive (default 5500-5599).
    #[serde(default)]
    pub port_range: Option<[u16; 2]>,
    /// The port of the host's routing proxy (pgbouncer), outside `port_range`: clients
    /// reach every database of the host's instances there, by database name. Absent: no
    /// proxy; clients use each instance's own port.
    #[serde(default)]
    pub proxy_port: Option<u16>,
}

impl CreateHost {
    /// The API's own machine as a host.
    pub fn local(name: &str, data_root: &str, ports: [u16; 2]) -> Self {
        Self {
            name: name.into(),
            kind: HostKind::Local,
            address: None,
            ssh_port: None,
            ssh_user: None,
            ssh_private_key: None,
            ssh_known_host_key: None,
            data_root: data_root.into(),
            port_range: Some(ports),
            proxy_port: None,
        }
    }
}

/// `PATCH /v1/hosts/{name}`: what may change on a registered host.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateHost {
    /// A port turns the routing proxy on (or moves it: clients of the old port are
    /// disconnected); `null` turns it off (clients go back to the instances' own ports);
    /// absent leaves it as it is.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u16>))]
    pub proxy_port: Option<Option<u16>>,
}

/// A field that is present: `null` is `Some(None)`, absent (the default) is `None`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PgVersion {
    /// Major version, e.g. `15`.
    pub version: String,
    /// What `pg_config --version` printed.
    pub full_version: String,
    pub bin_dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Host {
    pub id: Uuid,
    pub name: String,
    pub kind: HostKind,
    pub address: Option<String>,
    /// ssh: port, login and the host key checked on every connection (the private key is
    /// never returned).
    #[serde(default)]
    pub ssh_port: Option<u16>,
    #[serde(default)]
    pub ssh_user: Option<String>,
    #[serde(default)]
    pub ssh_known_host_key: Option<String>,
    pub data_root: String,
    pub port_range: [u16; 2],
    /// PostgreSQL versions found on the host at registration.
    pub pg_versions: Vec<PgVersion>,
    /// The routing proxy's port, when the host runs one.
    #[serde(default)]
    pub proxy_port: Option<u16>,
    /// The proxy's CA (PEM): its clients verify the proxy with it (`verify-full`).
    #[serde(default)]
    pub proxy_ca_cert: Option<String>,
    /// What the service last found of the proxy (absent: not checked yet).
    #[serde(default)]
    pub proxy_health: Option<HealthStatus>,
    #[serde(default)]
    pub proxy_message: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}
