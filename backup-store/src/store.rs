//! Where sealed backups are kept: a directory ([`FilesystemStore`]) or an S3 bucket
//! ([`S3Store`]), behind one interface. A store holds objects under keys the service builds
//! from ids (`<tenant id>/<database id>/<backup id>.dump.sealed`), never from names a tenant
//! chose, and an object appears only once its upload is committed, complete.

use tokio::io::{AsyncRead, AsyncWrite};

use super::filesystem::{self, FilesystemStore};
use super::s3::{self, BucketFacts, S3Location, S3Store};
use dbaas_crypto::MasterKey;
use dbaas_store::backups::{StoreKind, StoreRow};

pub use crate::object::{LockMode, Retention, StoreError};

#[derive(Debug, Clone)]
pub enum Store {
    Filesystem(FilesystemStore),
    /// Boxed: a client with its signing key is much larger than a directory path.
    S3(Box<S3Store>),
}

/// An object being written: the sealed bytes go to [`Upload::writer`], then
/// [`Upload::commit`] makes the object visible.
pub enum Upload {
    Filesystem(filesystem::Upload),
    S3(s3::Upload),
}

impl Upload {
    pub fn writer(&mut self) -> &mut (dyn AsyncWrite + Unpin + Send) {
        match self {
            Self::Filesystem(u) => u.writer(),
            Self::S3(u) => u.writer(),
        }
    }

    /// The object's version in the store, when it keeps versions.
    pub async fn commit(self) -> Result<Option<String>, StoreError> {
        match self {
            Self::Filesystem(u) => u.commit().await.map(|()| None),
            Self::S3(u) => u.commit().await,
        }
    }
}

impl Store {
    /// The store a row describes; an S3 store's secret is decrypted here and kept in the
    /// client only.
    pub fn from_row(row: &StoreRow, key: &MasterKey) -> Result<Self, StoreError> {
        match row.kind {
            StoreKind::Filesystem => {
                let path = row.path.as_deref().ok_or_else(|| StoreError::Unusable("no path recorded".into()))?;
                Ok(Self::Filesystem(FilesystemStore::new(std::path::Path::new(path))?))
            }
            StoreKind::S3 => {
                let s3 = row.s3.as_ref().ok_or_else(|| StoreError::Unusable("no bucket recorded".into()))?;
                let enc = row.secret_enc.as_deref().ok_or_else(|| StoreError::Unusable("no secret recorded".into()))?;
                let secret = key
                    .decrypt(enc, &row.secret_context())
                    .map_err(|e| StoreError::Unusable(format!("the store's secret: {e}")))?;
                Ok(Self::S3(Box::new(S3Store::new(
                    S3Location {
                        endpoint: s3.endpoint.clone(),
                        bucket: s3.bucket.clone(),
                        region: s3.region.clone(),
                        prefix: s3.prefix.clone(),
                        access_key_id: s3.access_key_id.clone(),
                    },
                    &secret,
                )?)))
            }
        }
    }

    pub async fn upload(&self, key: &str, retention: Option<Retention>) -> Result<Upload, StoreError> {
        match self {
            Self::Filesystem(s) => Ok(Upload::Filesystem(s.upload(key).await?)),
            Self::S3(s) => Ok(Upload::S3(s.upload(key, retention))),
        }
    }

    pub async fn open(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Box<dyn AsyncRead + Unpin + Send>, StoreError> {
        match self {
            Self::Filesystem(s) => Ok(Box::new(s.open(key).await?)),
            Self::S3(s) => Ok(Box::new(s.open(key, version).await?)),
        }
    }

    pub async fn delete(&self, key: &str, version: Option<&str>) -> Result<(), StoreError> {
        match self {
            Self::Filesystem(s) => s.delete(key).await,
            Self::S3(s) => s.delete(key, version).await,
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Filesystem(s) => s.list(prefix).await,
            Self::S3(s) => s.list(prefix).await,
        }
    }

    /// What registration checks: an object can be written, read back and deleted; for a
    /// bucket, whether it has Object Lock.
    pub async fn probe(&self) -> Result<BucketFacts, StoreError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let facts = match self {
            Self::Filesystem(_) => BucketFacts { object_lock: false },
            Self::S3(s) => s.facts().await?,
        };
        let key = format!("dbaas-probe-{}", uuid::Uuid::new_v4());
        let mut up = self.upload(&key, None).await?;
        up.writer().write_all(b"dbaas probe").await?;
        let version = up.commit().await?;
        let mut back = Vec::new();
        self.open(&key, version.as_deref()).await?.read_to_end(&mut back).await?;
        // Without a version: in a bucket with a default retention a probe's version stays
        // (locked), hidden behind a delete marker.
        self.delete(&key, None).await?;
        if back != b"dbaas probe" {
            return Err(StoreError::Unusable("a probe object read back differently".into()));
        }
        Ok(facts)
    }
}
