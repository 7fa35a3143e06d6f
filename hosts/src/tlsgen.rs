//! Certificates for the PostgreSQL servers we run: a CA of their own and server
//! certificates it signs, so clients can use `sslmode=verify-full` with the CA we hand out.
//!
//! Each instance has its own CA. Its key is kept (encrypted under the master key by the
//! caller) so a server certificate can be renewed before it expires without changing the CA
//! clients pinned: the issuer is rebuilt from the same name and key, which is all a leaf's
//! signature and issuer name depend on.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

/// How long an instance CA is valid: longer than any server certificate it signs, so
/// renewals never need a new CA in the instance's life.
const CA_VALIDITY_DAYS: i64 = 3650;

/// An instance CA: its certificate and key (PEM).
pub struct CaPem {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A server certificate and its key (PEM), with its expiry.
pub struct LeafPem {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: DateTime<Utc>,
}

/// PEM texts of a generated CA and the server certificate and key it signed.
pub struct ServerCert {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

fn offset(t: DateTime<Utc>) -> Result<time::OffsetDateTime, rcgen::Error> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|_| rcgen::Error::Time)
}

fn ca_params(ca_name: &str, now: DateTime<Utc>) -> Result<CertificateParams, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = offset(now - chrono::Duration::minutes(5))?;
    ca.not_after = offset(now + chrono::Duration::days(CA_VALIDITY_DAYS))?;
    Ok(ca)
}

/// A new CA named `ca_name`.
pub fn new_ca(ca_name: &str) -> Result<CaPem, rcgen::Error> {
    let key = KeyPair::generate()?;
    let cert = ca_params(ca_name, Utc::now())?.self_signed(&key)?;
    Ok(CaPem { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// The CA as an issuer again, from its name and key: leaves it signs verify against the
/// CA certificate issued first (same subject, same key and key identifier).
fn issuer(ca_name: &str, ca_key_pem: &str) -> Result<(Certificate, KeyPair), rcgen::Error> {
    let key = KeyPair::from_pem(ca_key_pem)?;
    let cert = ca_params(ca_name, Utc::now())?.self_signed(&key)?;
    Ok((cert, key))
}

/// Issues a server certificate for `names` (host names or IP addresses), valid from a few
/// minutes ago (clock skew) for `validity`.
pub fn issue_server(
    ca_name: &str,
    ca_key_pem: &str,
    names: &[String],
    validity: std::time::Duration,
) -> Result<LeafPem, rcgen::Error> {
    let (ca_cert, ca_key) = issuer(ca_name, ca_key_pem)?;
    let key = KeyPair::generate()?;
    let dns: Vec<String> = names.iter().filter(|n| n.parse::<IpAddr>().is_err()).cloned().collect();
    let mut params = CertificateParams::new(dns)?;
    for ip in names.iter().filter_map(|n| n.parse::<IpAddr>().ok()) {
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    params.distinguished_name.push(DnType::CommonName, names.first().map(String::as_str).unwrap_or("localhost"));
    let now = Utc::now();
    // Whole seconds, so the expiry recorded equals the one in the certificate.
    let validity = chrono::Duration::from_std(validity).map_err(|_| rcgen::Error::Time)?;
    let not_after = DateTime::from_timestamp((now + validity).timestamp(), 0).ok_or(rcgen::Error::Time)?;
    params.not_before = offset(now - chrono::Duration::minutes(5))?;
    params.not_after = offset(not_after)?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(LeafPem { cert_pem: cert.pem(), key_pem: key.serialize_pem(), not_after })
}

/// A CA and a server certificate for a local development or test cluster.
pub fn server_cert(ca_name: &str, names: &[String]) -> Result<ServerCert, rcgen::Error> {
    let ca = new_ca(ca_name)?;
    let leaf = issue_server(ca_name, &ca.key_pem, names, std::time::Duration::from_secs(825 * 86_400))?;
    Ok(ServerCert { ca_pem: ca.cert_pem, cert_pem: leaf.cert_pem, key_pem: leaf.key_pem })
}

/// The CA name of a managed instance (part of every certificate it signs).
pub fn instance_ca_name(instance: &str) -> String {
    format!("dbaas instance {instance} CA")
}

/// The CA name of a host's routing proxy.
pub fn proxy_ca_name(host: &str) -> String {
    format!("dbaas proxy {host} CA")
}
