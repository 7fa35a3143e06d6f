//! Signing in with an OIDC identity token (GitLab CI's `id_tokens`) instead of a stored API
//! token: what trust bindings require of a token ([`claims`]), the issuers' keys ([`jwks`]),
//! and the checks of an exchange ([`exchange`]).

pub mod claims;
pub mod exchange;
pub mod jwks;
