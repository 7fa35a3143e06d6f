//! Secrets: AES-256-GCM at rest under the operator's master key, SCRAM-SHA-256 verifiers,
//! generated passwords and tokens.
//!
//! The lowest layer of the service: it uses no other crate of the workspace, touches no
//! database and no file except the key file it is asked to read, and never logs (a secret
//! in a log is a leak). Everything above it (the state rows, the target work, the backup
//! stores, the service) takes its secrets from here.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key must be 32 bytes, base64-encoded (got {0} bytes)")]
    KeyLength(usize),
    #[error("master key is not valid base64: {0}")]
    KeyEncoding(#[from] base64::DecodeError),
    #[error("secret cannot be decrypted with this master key (wrong key or corrupted data)")]
    Decrypt,
}

/// The operator's key that encrypts every secret stored in the state database.
#[derive(Clone)]
pub struct MasterKey(Aes256Gcm, SaltKey);

/// A key derived from the master key (HMAC-SHA-256 of a fixed label) that only derives the
/// salts of SCRAM verifiers: never the encryption key itself.
#[derive(Clone)]
struct SaltKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let raw = B64.decode(text.trim())?;
        if raw.len() != 32 {
            return Err(CryptoError::KeyLength(raw.len()));
        }
        let cipher = Aes256Gcm::new_from_slice(&raw).map_err(|_| CryptoError::KeyLength(raw.len()))?;
        let mut salt_key = [0u8; 32];
        salt_key.copy_from_slice(&hmac(&raw, b"dbaas scram salt key v1"));
        Ok(Self(cipher, SaltKey(salt_key)))
    }

    /// A fresh random key, base64-encoded (what `dev` mode stores in its data dir).
    /// The key given as text, or read from a file; an error saying how to make one when
    /// neither is given.
    pub fn load(text: Option<&str>, file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = match (text, file) {
            (Some(k), _) => k.to_string(),
            (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            (None, None) => anyhow::bail!(
                "no master key: set DBAAS_MASTER_KEY (32 random bytes, base64: `openssl rand -base64 32`) or DBAAS_MASTER_KEY_FILE"
            ),
        };
        Ok(Self::from_base64(&text)?)
    }

    pub fn generate_base64() -> String {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        B64.encode(raw)
    }

    /// Encrypts `plain`; `context` (e.g. `credential:<id>`) is bound as associated data so a
    /// ciphertext copied onto another row does not decrypt.
    pub fn encrypt(&self, plain: &str, context: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: context.as_bytes() })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    /// The SCRAM-SHA-256 verifier of a login's password, the same every time for the same
    /// `context` (the credential, e.g. `credential:<id>`) and password: its salt is derived
    /// from both under the master key. The service sets it on the server and writes the same
    /// verifier into the routing proxy's auth file (pgbouncer passes SCRAM through only when
    /// both hold the same salt and iterations), and can rebuild that file from the state
    /// database at any time without storing verifiers. A new password gets a new salt.
    pub fn scram_verifier(&self, password: &str, context: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.1 .0).expect("HMAC accepts any key length");
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        let salt = mac.finalize().into_bytes();
        scram_with_salt(password, &salt[..16], 4096)
    }

    pub fn decrypt(&self, data: &[u8], context: &str) -> Result<String, CryptoError> {
        if data.len() < 12 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = data.split_at(12);
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }
}

/// A database password: 32 alphanumerics (~190 bits), safe in URIs and SASLprep-neutral.
pub fn generate_password() -> String {
    random_alnum(32)
}

pub fn random_alnum(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// Lower-case random suffix for lease role names.
pub fn random_suffix(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

/// A bearer token secret: recognisable prefix + 40 alphanumerics.
pub fn generate_token_secret() -> String {
    format!("dbaas_{}", random_alnum(40))
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, 4096 rounds),
/// so the plaintext never travels inside SQL.
pub fn scram_sha256_verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    scram_with_salt(password, &salt, 4096)
}

fn scram_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!("SCRAM-SHA-256${iterations}:{}${}:{}", B64.encode(salt), B64.encode(stored_key), B64.encode(server_key))
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).expect("key");
        let ct = key.encrypt("s3cret", "credential:1");
        assert_eq!(key.decrypt(&ct, "credential:1").expect("decrypt"), "s3cret");
        assert!(key.decrypt(&ct, "credential:2").is_err());
        let other = MasterKey::from_base64(&MasterKey::generate_base64()).expect("key");
        assert!(other.decrypt(&ct, "credential:1").is_err());
    }

    #[test]
    fn derived_verifiers_are_stable_per_credential_and_password() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).expect("key");
        let a = key.scram_verifier("pw", "credential:1");
        assert_eq!(a, key.scram_verifier("pw", "credential:1"));
        assert_ne!(a, key.scram_verifier("pw", "credential:2"));
        assert_ne!(a, key.scram_verifier("pw2", "credential:1"));
        let other = MasterKey::from_base64(&MasterKey::generate_base64()).expect("key");
        assert_ne!(a, other.scram_verifier("pw", "credential:1"));
        // The verifier of that salt: what PostgreSQL computes for the password.
        let salt = a.split('$').nth(1).and_then(|s| s.split(':').nth(1)).expect("salt");
        assert_eq!(a, scram_with_salt("pw", &B64.decode(salt).expect("b64"), 4096));
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(matches!(MasterKey::from_base64("c2hvcnQ="), Err(CryptoError::KeyLength(5))));
        assert!(MasterKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn scram_verifier_matches_rfc7677_vector() {
        // RFC 7677 §3's user: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
        // StoredKey/ServerKey cross-checked with Python's hashlib/hmac.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let v = scram_with_salt("pencil", &salt, 4096);
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }
}
