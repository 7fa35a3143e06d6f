//! Certificates for the PostgreSQL servers we run: a CA of their own and a server
//! certificate it signs, so clients can use `sslmode=verify-full` with the CA we hand out.

use std::net::IpAddr;

/// PEM texts of a generated CA and the server certificate and key it signed.
pub struct ServerCert {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Issues a server certificate valid for `names` (host names or IP addresses).
pub fn server_cert(ca_name: &str, names: &[String]) -> Result<ServerCert, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let dns: Vec<String> = names.iter().filter(|n| n.parse::<IpAddr>().is_err()).cloned().collect();
    let mut params = CertificateParams::new(dns)?;
    for ip in names.iter().filter_map(|n| n.parse::<IpAddr>().ok()) {
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    params.distinguished_name.push(DnType::CommonName, names.first().map(String::as_str).unwrap_or("localhost"));
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(ServerCert { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}
