//! An issuer's signing keys: its discovery document and JWKS, fetched once and kept; a
//! token naming a key the cache does not have refetches them (at most every
//! [`REFETCH_AFTER`] per issuer, so tokens with made-up key ids cannot make the service hammer
//! the issuer), and the cache is renewed after [`MAX_AGE`] so a key the issuer withdrew
//! stops being accepted.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};

/// The least time between two fetches of one issuer's keys.
pub const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// How long fetched keys are used without asking again.
pub const MAX_AGE: Duration = Duration::from_secs(600);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger documents are refused (a JWKS is a few kilobytes).
const MAX_DOCUMENT: usize = 256 * 1024;

struct Entry {
    keys: JwkSet,
    fetched: Instant,
}

/// Why no key was found.
#[derive(Debug)]
pub enum KeyError {
    /// The issuer's documents could not be fetched or read.
    Unreachable(String),
    /// The issuer does not publish that key.
    Unknown(String),
}

fn cache() -> &'static Mutex<HashMap<String, Entry>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// An issuer or key URL the service will fetch: `https`, or `http` to a loopback address
/// only (an issuer on the same machine, as in tests); no credentials, query or fragment.
pub fn fetchable(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = u.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
    let scheme_ok = u.scheme() == "https" || (u.scheme() == "http" && loopback);
    if !scheme_ok || !u.username().is_empty() || u.password().is_some() || u.query().is_some() || u.fragment().is_some()
    {
        return Err(format!(
            "{url:?} must be an https URL (http only to a loopback address), without credentials or query"
        ));
    }
    Ok(u)
}

async fn get_json<T: serde::de::DeserializeOwned>(url: reqwest::Url) -> Result<T, String> {
    let r = http().get(url.clone()).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", r.status()));
    }
    let body = r.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    if body.len() > MAX_DOCUMENT {
        return Err(format!("GET {url}: larger than {MAX_DOCUMENT} bytes"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

async fn fetch(issuer: &str) -> Result<JwkSet, String> {
    let base = issuer.trim_end_matches('/');
    let doc: Discovery = get_json(fetchable(&format!("{base}/.well-known/openid-configuration"))?).await?;
    if doc.issuer.trim_end_matches('/') != base {
        return Err(format!("the discovery document names issuer {:?}, not {issuer:?}", doc.issuer));
    }
    get_json(fetchable(&doc.jwks_uri)?).await
}

/// The key `kid` of `issuer`.
pub async fn key(issuer: &str, kid: &str) -> Result<Jwk, KeyError> {
    let stale = {
        let map = cache().lock().map_err(|_| KeyError::Unreachable("key cache poisoned".into()))?;
        match map.get(issuer) {
            Some(e) if e.fetched.elapsed() < MAX_AGE => match e.keys.find(kid) {
                Some(k) => return Ok(k.clone()),
                None if e.fetched.elapsed() < REFETCH_AFTER => {
                    return Err(KeyError::Unknown(format!("the issuer publishes no key {kid:?}")))
                }
                None => true,
            },
            _ => true,
        }
    };
    debug_assert!(stale);
    let keys = fetch(issuer).await.map_err(KeyError::Unreachable)?;
    let found = keys.find(kid).cloned();
    if let Ok(mut map) = cache().lock() {
        map.insert(issuer.to_string(), Entry { keys, fetched: Instant::now() });
    }
    found.ok_or_else(|| KeyError::Unknown(format!("the issuer publishes no key {kid:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(fetchable("https://gitlab.com").is_ok());
        assert!(fetchable("http://127.0.0.1:8080").is_ok());
        assert!(fetchable("http://localhost/x").is_ok());
        for bad in ["http://gitlab.com", "https://u:p@gitlab.com", "https://gitlab.com/?x=1", "ftp://x", "gitlab.com"] {
            assert!(fetchable(bad).is_err(), "{bad}");
        }
    }
}
