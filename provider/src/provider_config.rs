//! The provider block: `endpoint`, `token` (or `oidc_token`), `ca_cert`, `fresh_drift`, each
//! also from the environment.

use dbaas_client::Client;

use crate::cty::Value;
use crate::framework::model::decode;
use crate::framework::{model, Diags, Field, Path, Schema};

model! {
    /// The provider block.
    pub struct ProviderConfig {
        endpoint: Field<String> => optional("Base URL of the dbaas API, e.g. `https://dbaas.example.com`. Defaults to `$DBAAS_ENDPOINT`."),
        token: Field<String> => optional("API bearer token (admin or tenant). Defaults to `$DBAAS_TOKEN`.").sensitive(),
        oidc_token: Field<String> => optional("A CI job's OIDC identity token (GitLab `id_tokens`), exchanged for a short-lived API token of the tenant whose trust binding matches; used when no `token` is set. Defaults to `$DBAAS_OIDC_TOKEN`.").sensitive(),
        ca_cert: Field<String> => optional("PEM CA certificate to trust for the API's TLS certificate. Defaults to `$DBAAS_CA_CERT`."),
        fresh_drift: Field<bool> => optional("Refresh compares each database with its instance's catalog now instead of using the service's last background comparison (at most one reconciler interval old, one minute by default). Live checks connect to the instances and are limited to 30 a minute per tenant. Defaults to `$DBAAS_FRESH_DRIFT` (`true`/`false`), else false."),
    }
}

pub fn schema() -> Schema {
    Schema::new("Self-service PostgreSQL databases from the dbaas API.", ProviderConfig::attrs())
}

fn setting(attr: &Field<String>, env: &str) -> Option<String> {
    attr.as_str().map(str::to_string).or_else(|| std::env::var(env).ok()).filter(|s| !s.trim().is_empty())
}

/// Terraform sends an object with null attributes when nothing is set; an absent
/// configuration means the same (everything from the environment).
fn decode_config(config: &Value, diags: &mut Diags) -> Option<ProviderConfig> {
    if config.is_null() {
        Some(ProviderConfig::default())
    } else {
        decode(config, diags)
    }
}

pub fn validate(config: &Value, diags: &mut Diags) {
    if let Some(c) = decode_config(config, diags) {
        check(&c, diags);
    }
}

fn check(c: &ProviderConfig, diags: &mut Diags) {
    if let Some(e) = c.endpoint.as_str() {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            diags.error_at(
                Path::attr(ProviderConfig::endpoint),
                "Invalid endpoint",
                format!("{e:?} must start with http:// or https://"),
            );
        }
    }
    if let Some(pem) = c.ca_cert.as_str() {
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            diags.error_at(
                Path::attr(ProviderConfig::ca_cert),
                "Invalid CA certificate",
                "ca_cert must be a PEM certificate",
            );
        }
    }
}

/// Builds the client and checks, once, that the API answers and accepts the token.
pub async fn configure(config: &Value, diags: &mut Diags) -> Option<Client> {
    type P = ProviderConfig;
    let c = decode_config(config, diags)?;
    if [&c.endpoint, &c.token, &c.oidc_token, &c.ca_cert].iter().any(|v| v.is_unknown()) || c.fresh_drift.is_unknown() {
        // Known only after apply (e.g. from another resource); resources will report it.
        return None;
    }
    check(&c, diags);
    let Some(endpoint) = setting(&c.endpoint, "DBAAS_ENDPOINT") else {
        diags.error_at(
            Path::attr(P::endpoint),
            "Missing dbaas endpoint",
            "set `endpoint` in the provider block or DBAAS_ENDPOINT",
        );
        return None;
    };
    let ca = setting(&c.ca_cert, "DBAAS_CA_CERT");
    let token = match (setting(&c.token, "DBAAS_TOKEN"), setting(&c.oidc_token, "DBAAS_OIDC_TOKEN")) {
        (Some(t), _) => t,
        (None, Some(identity)) => match crate::oidc_login::api_token(&endpoint, ca.as_deref(), &identity).await {
            Ok(t) => t,
            Err(e) => {
                diags.error_at(Path::attr(P::oidc_token), "The dbaas API refused the identity token", e);
                return None;
            }
        },
        (None, None) => {
            diags.error_at(
                Path::attr(P::token),
                "Missing dbaas token",
                "set `token` (or DBAAS_TOKEN), or `oidc_token` (or DBAAS_OIDC_TOKEN) in a CI job",
            );
            return None;
        }
    };
    let fresh_drift =
        c.fresh_drift.get().unwrap_or_else(|| std::env::var("DBAAS_FRESH_DRIFT").is_ok_and(|v| v == "true"));
    if diags.has_errors() {
        return None;
    }
    let client = match Client::with_ca(&endpoint, &token, ca.as_deref()) {
        Ok(c) => c.with_fresh_drift(fresh_drift),
        Err(e) => {
            diags.error_at(Path::attr(P::endpoint), "Invalid dbaas provider configuration", e.to_string());
            return None;
        }
    };
    match client.list_instances().await {
        Ok(_) => Some(client),
        Err(e) if e.status() == Some(401) => {
            let detail = e.problem().map(|p| p.detail.clone()).unwrap_or_default();
            diags.error_at(Path::attr(P::token), "The dbaas API refused the token", detail);
            None
        }
        Err(e) => {
            diags.error_at(Path::attr(P::endpoint), format!("Cannot reach the dbaas API at {endpoint}"), e.to_string());
            None
        }
    }
}

/// The provider block as the framework's server sees it.
pub struct Block;

#[tonic::async_trait]
impl crate::framework::resource::ProviderConfig for Block {
    fn schema(&self) -> Schema {
        schema()
    }
    fn validate(&self, config: &Value, diags: &mut Diags) {
        validate(config, diags)
    }
    async fn configure(&self, config: &Value, diags: &mut Diags) -> Option<Client> {
        configure(config, diags).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_schema() {
        crate::framework::model::assert_matches_schema::<ProviderConfig>(&schema());
    }
}
