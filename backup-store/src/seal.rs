//! Backups are sealed before they leave the API host: AES-256-GCM in the STREAM construction
//! (RustCrypto's `aead::stream`, big-endian 32-bit counter with a last-chunk flag), under a
//! data key of its own per backup that the master key wraps. Streaming, so a dump never sits
//! whole in memory or on local disk; each 64 KiB chunk is authenticated, the last one is
//! marked, and the backup's id is bound to every chunk, so a flipped byte, a truncated or
//! extended object, reordered chunks or an object copied under another backup's id all fail
//! to open. SHA-256 of the stored bytes is computed on the way (the store's checksum).
//!
//! Layout: `DBAASBK1` (8 bytes), the 7-byte nonce prefix, then the chunks, each
//! `CHUNK` bytes of plaintext + a 16-byte tag, all full but the last (which may be empty).

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::{KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

use dbaas_crypto::MasterKey;

const MAGIC: &[u8; 8] = b"DBAASBK1";
const PREFIX_LEN: usize = 7;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("reading or writing the backup: {0}")]
    Io(#[from] std::io::Error),
    /// The object is not what this backup sealed: tampered, truncated or another backup's.
    #[error("the backup does not open: {0}")]
    Corrupt(&'static str),
    #[error("the backup's data key does not unwrap: {0}")]
    Key(String),
}

/// A backup's data key, and the form the state database keeps (wrapped by the master key).
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        Self(k)
    }

    fn context(backup: Uuid) -> String {
        format!("backup-key:{backup}")
    }

    pub fn wrap(&self, master: &MasterKey, backup: Uuid) -> Vec<u8> {
        master.encrypt(&base64::engine::general_purpose::STANDARD.encode(self.0), &Self::context(backup))
    }

    pub fn unwrap_with(master: &MasterKey, wrapped: &[u8], backup: Uuid) -> Result<Self, SealError> {
        let text = master.decrypt(wrapped, &Self::context(backup)).map_err(|e| SealError::Key(e.to_string()))?;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| SealError::Key(e.to_string()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::Key("not 32 bytes".into()))?;
        Ok(Self(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

/// What sealing wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Bytes read from the source (the dump's size).
    pub plain_bytes: u64,
    /// Bytes written (the object's size).
    pub stored_bytes: u64,
    /// SHA-256 of the stored bytes, hex.
    pub sha256: String,
}

fn aad(backup: Uuid) -> Vec<u8> {
    format!("dbaas-backup:{backup}").into_bytes()
}

/// Writes stored bytes, counting and hashing them.
async fn put<W: AsyncWrite + Unpin + ?Sized>(
    dst: &mut W,
    hash: &mut Sha256,
    n: &mut u64,
    bytes: &[u8],
) -> std::io::Result<()> {
    hash.update(bytes);
    *n += bytes.len() as u64;
    dst.write_all(bytes).await
}

/// Reads until `buf` is full or the source ends; how many bytes it holds.
async fn fill<R: AsyncRead + Unpin + ?Sized>(src: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = src.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// Seals everything `src` yields into `dst` (which it flushes, not closes).
pub async fn seal<R, W>(key: &DataKey, backup: Uuid, src: &mut R, dst: &mut W) -> Result<Sealed, SealError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut prefix = [0u8; PREFIX_LEN];
    rand::thread_rng().fill_bytes(&mut prefix);
    // Taken by the last chunk (`encrypt_last` consumes it).
    let mut enc = Some(EncryptorBE32::from_aead(key.cipher(), GenericArray::from_slice(&prefix)));
    let aad = aad(backup);
    let mut hash = Sha256::new();
    let mut stored = 0u64;
    let header = [MAGIC.as_slice(), &prefix].concat();
    put(dst, &mut hash, &mut stored, &header).await?;

    // One chunk of lookahead: a chunk is the last one only when the source has ended.
    let mut current = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    let mut len = fill(src, &mut current).await?;
    let mut plain = len as u64;
    loop {
        let next_len = if len == CHUNK { fill(src, &mut next).await? } else { 0 };
        let last = len < CHUNK || next_len == 0;
        let payload = Payload { msg: &current[..len], aad: &aad };
        let sealed = match (last, enc.as_mut()) {
            (false, Some(e)) => e.encrypt_next(payload),
            (true, Some(_)) => enc.take().ok_or(SealError::Corrupt("sealed twice"))?.encrypt_last(payload),
            (_, None) => return Err(SealError::Corrupt("sealed after the last chunk")),
        }
        .map_err(|_| SealError::Corrupt("sealing failed (over 2^32 chunks)"))?;
        put(dst, &mut hash, &mut stored, &sealed).await?;
        if last {
            break;
        }
        std::mem::swap(&mut current, &mut next);
        len = next_len;
        plain += len as u64;
    }
    dst.flush().await?;
    Ok(Sealed { plain_bytes: plain, stored_bytes: stored, sha256: hex(&hash.finalize()) })
}

/// Opens what [`seal`] wrote for `backup`, writing the plaintext to `dst`; returns the SHA-256
/// of the stored bytes read. Nothing is trusted before its chunk authenticates, but earlier
/// chunks have been written by the time a later one fails: restore into a scratch target.
pub async fn open<R, W>(key: &DataKey, backup: Uuid, src: &mut R, dst: &mut W) -> Result<String, SealError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut hash = Sha256::new();
    let mut header = [0u8; MAGIC.len() + PREFIX_LEN];
    if fill(src, &mut header).await? != header.len() || &header[..MAGIC.len()] != MAGIC {
        return Err(SealError::Corrupt("not a sealed dbaas backup"));
    }
    hash.update(header);
    let prefix: [u8; PREFIX_LEN] = header[MAGIC.len()..].try_into().map_err(|_| SealError::Corrupt("header"))?;
    let mut dec = Some(DecryptorBE32::from_aead(key.cipher(), GenericArray::from_slice(&prefix)));
    let aad = aad(backup);
    let mut current = vec![0u8; CHUNK + TAG];
    let mut next = vec![0u8; CHUNK + TAG];
    let mut len = fill(src, &mut current).await?;
    loop {
        if len < TAG {
            return Err(SealError::Corrupt("truncated"));
        }
        let next_len = if len == CHUNK + TAG { fill(src, &mut next).await? } else { 0 };
        let last = next_len == 0;
        hash.update(&current[..len]);
        let payload = Payload { msg: &current[..len], aad: &aad };
        let plain = match (last, dec.as_mut()) {
            (false, Some(d)) => d.decrypt_next(payload),
            (true, Some(_)) => dec.take().ok_or(SealError::Corrupt("opened twice"))?.decrypt_last(payload),
            (_, None) => return Err(SealError::Corrupt("data after the last chunk")),
        }
        .map_err(|_| SealError::Corrupt("a chunk failed authentication"))?;
        dst.write_all(&plain).await?;
        if last {
            break;
        }
        std::mem::swap(&mut current, &mut next);
        len = next_len;
    }
    dst.flush().await?;
    Ok(hex(&hash.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64()).expect("key")
    }

    async fn roundtrip(plain: &[u8]) -> (Vec<u8>, Sealed) {
        let (key, id) = (DataKey::generate(), Uuid::new_v4());
        let mut stored = Vec::new();
        let sealed = seal(&key, id, &mut &plain[..], &mut stored).await.expect("seal");
        let mut out = Vec::new();
        let sha = open(&key, id, &mut &stored[..], &mut out).await.expect("open");
        assert_eq!(out, plain);
        assert_eq!(sha, sealed.sha256);
        assert_eq!(sealed.sha256, hex(&Sha256::digest(&stored)));
        (stored, sealed)
    }

    #[tokio::test]
    async fn sizes_around_chunk_boundaries_round_trip() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let (stored, sealed) = roundtrip(&plain).await;
            assert_eq!(sealed.plain_bytes, n as u64);
            let chunks = n / CHUNK + 1 - usize::from(n > 0 && n % CHUNK == 0);
            assert_eq!(stored.len(), 15 + n + chunks * TAG, "{n} bytes");
        }
    }

    #[tokio::test]
    async fn no_plaintext_is_stored() {
        let plain = b"INSERT marker-row-7f3a secret customer data ".repeat(5000);
        let (stored, _) = roundtrip(&plain).await;
        assert!(!stored.windows(15).any(|w| w == b"marker-row-7f3a"));
    }

    #[tokio::test]
    async fn tampering_truncation_and_another_id_fail() {
        let (key, id) = (DataKey::generate(), Uuid::new_v4());
        let plain = vec![7u8; 2 * CHUNK + 10];
        let mut stored = Vec::new();
        seal(&key, id, &mut &plain[..], &mut stored).await.expect("seal");
        let fails = |bytes: Vec<u8>, id: Uuid| {
            let key = &key;
            async move {
                let mut out = Vec::new();
                matches!(open(key, id, &mut &bytes[..], &mut out).await, Err(SealError::Corrupt(_)))
            }
        };
        let mut flipped = stored.clone();
        flipped[CHUNK + 100] ^= 1;
        assert!(fails(flipped, id).await, "a flipped byte");
        assert!(fails(stored[..stored.len() - 1].to_vec(), id).await, "one byte short");
        assert!(fails(stored[..15 + CHUNK + TAG].to_vec(), id).await, "whole chunks missing");
        assert!(fails([stored.clone(), vec![0; 20]].concat(), id).await, "bytes appended");
        assert!(fails(stored.clone(), Uuid::new_v4()).await, "another backup's id");
        assert!(fails(b"PGDMP not sealed".to_vec(), id).await, "plain dump");
    }

    #[test]
    fn data_keys_wrap_for_one_backup_only() {
        let (m, id) = (master(), Uuid::new_v4());
        let key = DataKey::generate();
        let wrapped = key.wrap(&m, id);
        assert_eq!(DataKey::unwrap_with(&m, &wrapped, id).expect("unwrap").0, key.0);
        assert!(DataKey::unwrap_with(&m, &wrapped, Uuid::new_v4()).is_err());
        assert!(DataKey::unwrap_with(&master(), &wrapped, id).is_err());
    }
}
