//! Tenants and API tokens.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lower-case letters, digits and single '-' inside, starting with a letter; at most 20.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z](-?[a-z0-9])*$", min_length = 1, max_length = 20))]
    pub name: String,
    /// Quota: how many live databases the tenant may have (default 50).
    #[serde(default)]
    pub max_databases: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub max_databases: Option<i32>,
    /// Optimistic concurrency: the version last read (or send `If-Match`).
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub max_databases: i32,
    pub database_count: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Tenant the token is scoped to; omit (admin callers only) for a platform-admin token.
    pub tenant: Option<String>,
    /// A label for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// Lifetime, e.g. `90d`, `12h`, `3600s`. Omit for no expiry.
    #[serde(default)]
    pub ttl: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Token {
    pub id: Uuid,
    pub tenant: Option<String>,
    pub admin: bool,
    pub description: String,
    /// First characters of the secret, to recognise it.
    pub prefix: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Returned once, at creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: Token,
    pub secret: String,
}
