//! Signing in with an OIDC identity token (a GitLab CI job's): trust bindings and the
//! exchange.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

/// What a token may do within its tenant.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenAccess {
    /// Everything a tenant token may do.
    #[default]
    Full,
    /// Reads only (GET): any other method is refused with 403.
    ReadOnly,
}

impl TokenAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read_only",
        }
    }
}

/// `POST /v1/oidc-bindings`: which identity tokens may sign in as a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateOidcBinding {
    pub tenant: String,
    /// Unique within the tenant: lower-case letters, digits and '-'.
    pub name: String,
    /// The issuer (`iss`), e.g. `https://gitlab.com`; its keys come from its discovery
    /// document. `https` only (`http` to a loopback address only).
    pub issuer: String,
    /// The audience (`aud`) the tokens must carry: in GitLab, the `aud` of the job's
    /// `id_tokens` entry (the API's URL).
    pub audience: String,
    /// Claims the token must carry, with `*`/`?` globs: `project_id` or `namespace_id`
    /// (exact ids) and something about the ref (`ref`, `ref_path`, `ref_protected`,
    /// `environment`, `environment_protected`); also `ref_type`, `pipeline_source`.
    pub claims: BTreeMap<String, String>,
    /// What the exchanged tokens may do (default `full`).
    #[serde(default)]
    pub access: Option<TokenAccess>,
    /// Trust every ref of the project (no ref requirement): must be said explicitly.
    #[serde(default)]
    pub unprotected: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OidcBinding {
    pub id: Uuid,
    pub tenant: String,
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub claims: BTreeMap<String, String>,
    pub access: TokenAccess,
    pub unprotected: bool,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/auth/oidc` (no bearer token).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OidcExchange {
    /// The identity token (JWT), e.g. `$DBAAS_OIDC_TOKEN` from the job's `id_tokens`.
    pub token: String,
    /// Needed only when bindings of several tenants match the token.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// An API token for the job: use it as the bearer token until it expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OidcToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub tenant: String,
    pub binding: String,
    pub access: TokenAccess,
}
