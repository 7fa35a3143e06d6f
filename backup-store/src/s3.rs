//! An S3 (or S3-protocol) bucket as a backup store, through the AWS SDK with path-style
//! addressing (what S3-compatible servers expect).
//!
//! An upload is streamed: the sealed bytes go through an in-memory pipe to a task that sends
//! them in parts of [`PART_SIZE`] (a single `PutObject` when the whole object fits in one), so
//! a dump never sits whole in memory or on disk. Every part carries its SHA-256, which S3
//! checks on arrival. The object appears only when the upload is committed: dropped without
//! a commit (a failed dump), the multipart upload is aborted; after a SIGKILL the incomplete
//! upload is invisible to readers and the bucket's lifecycle rule
//! (`AbortIncompleteMultipartUpload`, see docs/runbooks/backups.md) removes its parts.
//!
//! With Object Lock, each object is written with a retention date (mode governance or
//! compliance). Objects are then addressed by version: deleting a key without a version in a
//! versioned bucket only hides it, so the service records the version it wrote and deletes
//! that version, which S3 refuses before the retention date.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockEnabled};
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::object::{LockMode, Retention, StoreError};

/// Parts of 16 MiB: S3 needs at least 5 MiB but the last, and allows 10,000 parts, so one
/// object may hold ~156 GiB; larger databases need a larger part size.
pub const PART_SIZE: usize = 16 * 1024 * 1024;

/// Where a bucket is and how to sign in to it (the secret decrypted only to build a client).
#[derive(Debug, Clone)]
pub struct S3Location {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Prepended to every key (`backups/` or empty).
    pub prefix: String,
    pub access_key_id: String,
}

#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    loc: S3Location,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret; the client holds it.
        f.debug_struct("S3Store").field("location", &self.loc).finish_non_exhaustive()
    }
}

/// What registration learns about a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketFacts {
    pub object_lock: bool,
}

fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    what: &str,
    e: SdkError<E, R>,
) -> StoreError {
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::Unreachable(format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("unknown").to_string();
            let msg = se.err().message().unwrap_or("").to_string();
            match code.as_str() {
                "NoSuchKey" | "NoSuchVersion" | "NotFound" => StoreError::NotFound(what.to_string()),
                "AccessDenied" if what.starts_with("delete") => StoreError::Locked(format!("{what}: {code} {msg}")),
                "SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout" => {
                    StoreError::Unreachable(format!("{what}: {code} {msg}"))
                }
                _ => StoreError::Unusable(format!("{what}: {code} {msg}")),
            }
        }
        _ => StoreError::Unusable(format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))),
    }
}

fn sha256_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

fn lock_mode(m: LockMode) -> aws_sdk_s3::types::ObjectLockMode {
    match m {
        LockMode::Governance => aws_sdk_s3::types::ObjectLockMode::Governance,
        LockMode::Compliance => aws_sdk_s3::types::ObjectLockMode::Compliance,
    }
}

fn s3_time(t: DateTime<Utc>) -> aws_sdk_s3::primitives::DateTime {
    aws_sdk_s3::primitives::DateTime::from_secs(t.timestamp())
}

/// The SDK's HTTP client on rustls with ring (the service's TLS stack); plain `http://`
/// endpoints work too (S3-compatible servers on a private network).
pub fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

impl S3Store {
    pub fn new(loc: S3Location, secret_access_key: &str) -> Result<Self, StoreError> {
        let endpoint_ok = loc.endpoint.starts_with("https://") || loc.endpoint.starts_with("http://");
        if !endpoint_ok {
            return Err(StoreError::Unusable(format!("endpoint {:?} is not an http(s) URL", loc.endpoint)));
        }
        let http = http_client();
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(120))
            .build();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(loc.region.clone()))
            .endpoint_url(loc.endpoint.trim_end_matches('/'))
            .force_path_style(true)
            .credentials_provider(Credentials::new(&loc.access_key_id, secret_access_key, None, None, "dbaas-store"))
            .http_client(http)
            .timeout_config(timeouts)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(3))
            .build();
        Ok(Self { client: aws_sdk_s3::Client::from_conf(conf), loc })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.loc.prefix)
    }

    /// Whether the bucket has Object Lock enabled (a bucket without any configuration answers
    /// with an error code, which means no).
    pub async fn facts(&self) -> Result<BucketFacts, StoreError> {
        match self.client.get_object_lock_configuration().bucket(&self.loc.bucket).send().await {
            Ok(out) => Ok(BucketFacts {
                object_lock: out
                    .object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    .is_some_and(|e| *e == ObjectLockEnabled::Enabled),
            }),
            Err(SdkError::ServiceError(se)) if se.err().code() == Some("ObjectLockConfigurationNotFoundError") => {
                Ok(BucketFacts { object_lock: false })
            }
            Err(e) => Err(classify("reading the bucket's Object Lock configuration", e)),
        }
    }

    pub fn upload(&self, key: &str, retention: Option<Retention>) -> Upload {
        let (writer, reader) = tokio::io::duplex(1024 * 1024);
        let (commit_tx, commit_rx) = oneshot::channel();
        let task = tokio::spawn(send(self.clone(), self.full(key), retention, reader, commit_rx));
        Upload { writer, commit: commit_tx, task }
    }

    pub async fn open(&self, key: &str, version: Option<&str>) -> Result<impl AsyncRead + Unpin + Send, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.loc.bucket)
            .key(self.full(key))
            .set_version_id(version.map(str::to_string))
            .send()
            .await
            .map_err(|e| classify(&format!("reading {key}"), e))?;
        Ok(out.body.into_async_read())
    }

    /// Deletes the version written (or the key, without Object Lock). Gone already is not an
    /// error; S3 refusing before the retention date is [`StoreError::Locked`].
    pub async fn delete(&self, key: &str, version: Option<&str>) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.loc.bucket)
            .key(self.full(key))
            .set_version_id(version.map(str::to_string))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify(&format!("delete {key}"), e) {
                StoreError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Keys (without the store's prefix) of complete objects under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut pages =
            self.client.list_objects_v2().bucket(&self.loc.bucket).prefix(self.full(prefix)).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("listing objects", e))?;
            for o in page.contents() {
                if let Some(k) = o.key().and_then(|k| k.strip_prefix(&self.loc.prefix)) {
                    out.push(k.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// An object being written: write the sealed bytes to [`Upload::writer`], then
/// [`Upload::commit`]. Dropped without a commit, nothing appears in the bucket.
pub struct Upload {
    writer: DuplexStream,
    commit: oneshot::Sender<()>,
    task: JoinHandle<Result<Option<String>, StoreError>>,
}

impl Upload {
    pub fn writer(&mut self) -> &mut DuplexStream {
        &mut self.writer
    }

    /// Ends the stream and completes the upload: the object's version (when the bucket keeps
    /// versions).
    pub async fn commit(self) -> Result<Option<String>, StoreError> {
        drop(self.writer);
        let _ = self.commit.send(());
        self.task.await.map_err(|e| StoreError::Unusable(format!("the upload task ended: {e}")))?
    }
}

/// Reads up to one part from the pipe: fewer bytes only at the end of the stream.
async fn read_part(reader: &mut DuplexStream) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(PART_SIZE);
    while buf.len() < PART_SIZE {
        let n = (&mut *reader).take((PART_SIZE - buf.len()) as u64).read_to_end(&mut buf).await?;
        if n == 0 {
            break;
        }
    }
    Ok(buf)
}

async fn send(
    store: S3Store,
    key: String,
    retention: Option<Retention>,
    mut reader: DuplexStream,
    commit: oneshot::Receiver<()>,
) -> Result<Option<String>, StoreError> {
    let c = &store.client;
    let bucket = &store.loc.bucket;
    let first = read_part(&mut reader).await?;
    if first.len() < PART_SIZE {
        // The whole object fits in one request; sent only once the writer commits.
        if commit.await.is_err() {
            return Err(StoreError::Unusable("the upload was abandoned".into()));
        }
        let out = c
            .put_object()
            .bucket(bucket)
            .key(&key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(sha256_b64(&first))
            .set_object_lock_mode(retention.map(|r| lock_mode(r.mode)))
            .set_object_lock_retain_until_date(retention.map(|r| s3_time(r.until)))
            .body(ByteStream::from(first))
            .send()
            .await
            .map_err(|e| classify(&format!("writing {key}"), e))?;
        return Ok(out.version_id().map(str::to_string));
    }
    let created = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(&key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .set_object_lock_mode(retention.map(|r| lock_mode(r.mode)))
        .set_object_lock_retain_until_date(retention.map(|r| s3_time(r.until)))
        .send()
        .await
        .map_err(|e| classify(&format!("starting the upload of {key}"), e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let parts = async {
        let mut parts = Vec::new();
        let mut data = first;
        let mut n = 1;
        while !data.is_empty() {
            let sum = sha256_b64(&data);
            let out = c
                .upload_part()
                .bucket(bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(n)
                .checksum_sha256(&sum)
                .body(ByteStream::from(data))
                .send()
                .await
                .map_err(|e| classify(&format!("writing part {n} of {key}"), e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .checksum_sha256(sum)
                    .build(),
            );
            n += 1;
            data = read_part(&mut reader).await?;
        }
        Ok::<_, StoreError>(parts)
    }
    .await;
    let committed = match parts {
        Ok(parts) if commit.await.is_ok() => Some(parts),
        Ok(_) => None,
        Err(e) => {
            abort(&store, &key, &upload_id).await;
            return Err(e);
        }
    };
    let Some(parts) = committed else {
        abort(&store, &key, &upload_id).await;
        return Err(StoreError::Unusable("the upload was abandoned".into()));
    };
    let out = c
        .complete_multipart_upload()
        .bucket(bucket)
        .key(&key)
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .map_err(|e| classify(&format!("completing the upload of {key}"), e))?;
    Ok(out.version_id().map(str::to_string))
}

async fn abort(store: &S3Store, key: &str, upload_id: &str) {
    let r = store.client.abort_multipart_upload().bucket(&store.loc.bucket).key(key).upload_id(upload_id).send().await;
    if let Err(e) = r {
        tracing::warn!(key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "aborting a multipart upload failed");
    }
}
