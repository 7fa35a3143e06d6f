//! The provider signing in with a CI job's OIDC identity token (`oidc_token`,
//! `$DBAAS_OIDC_TOKEN`) instead of a stored API token.
//!
//! The API exchanges an identity token once only (its `jti`), but Terraform configures the
//! provider again for each walk of one command (validate, plan, apply) and again for the next
//! command of the same job. So the API token an exchange returns is kept for the rest of its
//! life in the working directory's Terraform data directory (`$TF_DATA_DIR`, `.terraform` by
//! default: `dbaas-oidc/<digest of the identity token>.json`, mode 0600, directory 0700), keyed
//! by the identity token: the same job reuses it, any other identity token exchanges anew.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use dbaas_client::{Client, OidcExchange};
use sha2::{Digest, Sha256};

#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    token: String,
    expires_at: DateTime<Utc>,
}

fn kept_path(identity: &str) -> PathBuf {
    let dir = std::env::var("TF_DATA_DIR").ok().filter(|d| !d.is_empty()).unwrap_or_else(|| ".terraform".into());
    let digest: String = Sha256::digest(identity.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect();
    PathBuf::from(dir).join("dbaas-oidc").join(format!("{digest}.json"))
}

/// The API token for `identity`: kept from an earlier exchange of the same identity token
/// while it has more than a minute left, else exchanged now (and kept).
pub async fn api_token(endpoint: &str, ca: Option<&str>, identity: &str) -> Result<String, String> {
    let path = kept_path(identity);
    if let Some(k) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Kept>(&b).ok()) {
        if k.expires_at > Utc::now() + chrono::Duration::seconds(60) {
            return Ok(k.token);
        }
    }
    let anonymous = Client::with_ca(endpoint, "", ca).map_err(|e| e.to_string())?;
    let got = anonymous.oidc_exchange(&OidcExchange { token: identity.to_string(), tenant: None }).await.map_err(
        |e| match e.problem() {
            Some(p) => format!("{} ({})", p.detail, p.code),
            None => e.to_string(),
        },
    )?;
    // Keeping it is best effort: without it the next walk of this job's run fails as a replay,
    // which the diagnostic then says.
    if let Err(e) = keep(&path, &Kept { token: got.token.clone(), expires_at: got.expires_at }) {
        tracing::warn!(error = %e, path = %path.display(), "the exchanged API token could not be kept");
    }
    Ok(got.token)
}

fn keep(path: &std::path::Path, k: &Kept) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(&serde_json::to_vec(k).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}
