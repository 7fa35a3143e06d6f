//! The provider block: `endpoint`, `token`, `ca_cert`, each also from the environment.

use dbaas_client::Client;

use crate::cty::{Type, Value};
use crate::framework::{Attr, Diags, Path, Schema};

pub fn schema() -> Schema {
    Schema::new(
        "Self-service PostgreSQL databases from the dbaas API.",
        vec![
            Attr::optional(
                "endpoint",
                Type::String,
                "Base URL of the dbaas API, e.g. `https://dbaas.example.com`. Defaults to `$DBAAS_ENDPOINT`.",
            ),
            Attr::optional("token", Type::String, "API bearer token (admin or tenant). Defaults to `$DBAAS_TOKEN`.")
                .sensitive(),
            Attr::optional(
                "ca_cert",
                Type::String,
                "PEM CA certificate to trust for the API's TLS certificate. Defaults to `$DBAAS_CA_CERT`.",
            ),
        ],
    )
}

fn setting(config: &Value, attr: &str, env: &str) -> Option<String> {
    config.get(attr).as_str().map(str::to_string).or_else(|| std::env::var(env).ok()).filter(|s| !s.trim().is_empty())
}

pub fn validate(config: &Value, diags: &mut Diags) {
    if let Some(e) = config.get("endpoint").as_str() {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            diags.error_at(
                Path::attr("endpoint"),
                "Invalid endpoint",
                format!("{e:?} must start with http:// or https://"),
            );
        }
    }
    if let Some(pem) = config.get("ca_cert").as_str() {
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            diags.error_at(Path::attr("ca_cert"), "Invalid CA certificate", "ca_cert must be a PEM certificate");
        }
    }
}

/// Builds the client and checks, once, that the API answers and accepts the token.
pub async fn configure(config: &Value, diags: &mut Diags) -> Option<Client> {
    if [config.get("endpoint"), config.get("token"), config.get("ca_cert")].iter().any(|v| v.is_unknown()) {
        // Known only after apply (e.g. from another resource); resources will report it.
        return None;
    }
    validate(config, diags);
    let Some(endpoint) = setting(config, "endpoint", "DBAAS_ENDPOINT") else {
        diags.error_at(
            Path::attr("endpoint"),
            "Missing dbaas endpoint",
            "set `endpoint` in the provider block or DBAAS_ENDPOINT",
        );
        return None;
    };
    let Some(token) = setting(config, "token", "DBAAS_TOKEN") else {
        diags.error_at(Path::attr("token"), "Missing dbaas token", "set `token` in the provider block or DBAAS_TOKEN");
        return None;
    };
    let ca = setting(config, "ca_cert", "DBAAS_CA_CERT");
    if diags.has_errors() {
        return None;
    }
    let client = match Client::with_ca(&endpoint, &token, ca.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            diags.error_at(Path::attr("endpoint"), "Invalid dbaas provider configuration", e.to_string());
            return None;
        }
    };
    match client.list_instances().await {
        Ok(_) => Some(client),
        Err(e) if e.status() == Some(401) => {
            let detail = e.problem().map(|p| p.detail.clone()).unwrap_or_default();
            diags.error_at(Path::attr("token"), "The dbaas API refused the token", detail);
            None
        }
        Err(e) => {
            diags.error_at(Path::attr("endpoint"), format!("Cannot reach the dbaas API at {endpoint}"), e.to_string());
            None
        }
    }
}
