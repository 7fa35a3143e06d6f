//! An S3 (or S3-protocol) bucket as a backup store, with path-style addressing (what
//! S3-compatible servers expect).
//!
//! Requests are built and signed (SigV4, as presigned URLs) by `rusty-s3`, a small sans-IO
//! crate, and sent with the service's `reqwest` client on rustls: the AWS SDK did the same
//! for this handful of calls at a quarter of the workspace's compile time. What the SDK gave
//! beyond signing is here: retries of transient failures (3 attempts, backoff), S3's error
//! codes mapped to [`StoreError`], timeouts.
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

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use chrono::SecondsFormat;
use futures_util::TryStreamExt;
use reqwest::Method;
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

use crate::object::{LockMode, Retention, StoreError};

/// Parts of 16 MiB: S3 needs at least 5 MiB but the last, and allows 10,000 parts, so one
/// object may hold ~156 GiB; larger databases need a larger part size.
pub const PART_SIZE: usize = 16 * 1024 * 1024;
/// How long a signed request stays valid (retries of one request reuse its signature).
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);
/// Attempts of one request when S3 cannot be reached or answers with a transient error.
const ATTEMPTS: u32 = 3;

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
    http: reqwest::Client,
    bucket: Bucket,
    credentials: Credentials,
    loc: S3Location,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret; the credentials hold it.
        f.debug_struct("S3Store").field("location", &self.loc).finish_non_exhaustive()
    }
}

/// What registration learns about a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketFacts {
    pub object_lock: bool,
}

/// The text of `<name>` in an S3 answer (error documents and small results are flat).
fn xml_field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(&body[start..end])
}

/// An S3 error answer as a [`StoreError`].
fn classify(what: &str, status: u16, body: &str) -> StoreError {
    let code = xml_field(body, "Code").unwrap_or(if status == 404 { "NotFound" } else { "unknown" });
    let msg = xml_field(body, "Message").unwrap_or("");
    match code {
        "NoSuchKey" | "NoSuchVersion" | "NotFound" => StoreError::NotFound(what.to_string()),
        "AccessDenied" if what.starts_with("delete") => StoreError::Locked(format!("{what}: {code} {msg}")),
        "SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout" => {
            StoreError::Unreachable(format!("{what}: {code} {msg}"))
        }
        _ if status >= 500 => StoreError::Unreachable(format!("{what}: HTTP {status} {code} {msg}")),
        _ => StoreError::Unusable(format!("{what}: {code} {msg}")),
    }
}

fn sha256_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

/// The headers that write an object under Object Lock.
fn lock_headers(retention: Option<Retention>) -> Vec<(&'static str, String)> {
    let Some(r) = retention else { return Vec::new() };
    let mode = match r.mode {
        LockMode::Governance => "GOVERNANCE",
        LockMode::Compliance => "COMPLIANCE",
    };
    vec![
        ("x-amz-object-lock-mode", mode.to_string()),
        ("x-amz-object-lock-retain-until-date", r.until.to_rfc3339_opts(SecondsFormat::Secs, true)),
    ]
}

/// Signs `action` with `headers` among its signed headers (they must be sent as signed).
fn signed<'a, A: S3Action<'a>>(mut action: A, headers: &[(&'static str, String)]) -> Url {
    for (name, value) in headers {
        action.headers_mut().insert(*name, value.clone());
    }
    action.sign(SIGNED_FOR)
}

fn version_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers().get("x-amz-version-id").and_then(|v| v.to_str().ok()).map(str::to_string)
}

impl S3Store {
    pub fn new(loc: S3Location, secret_access_key: &str) -> Result<Self, StoreError> {
        let endpoint_ok = loc.endpoint.starts_with("https://") || loc.endpoint.starts_with("http://");
        if !endpoint_ok {
            return Err(StoreError::Unusable(format!("endpoint {:?} is not an http(s) URL", loc.endpoint)));
        }
        let endpoint: Url = loc
            .endpoint
            .trim_end_matches('/')
            .parse()
            .map_err(|e| StoreError::Unusable(format!("endpoint {:?}: {e}", loc.endpoint)))?;
        let bucket = Bucket::new(endpoint, UrlStyle::Path, loc.bucket.clone(), loc.region.clone())
            .map_err(|e| StoreError::Unusable(format!("bucket {:?} at {:?}: {e}", loc.bucket, loc.endpoint)))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| StoreError::Unusable(format!("an HTTP client: {e}")))?;
        let credentials = Credentials::new(loc.access_key_id.clone(), secret_access_key);
        Ok(Self { http, bucket, credentials, loc })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.loc.prefix)
    }

    /// Sends one signed request, again on a transient failure; a non-2xx answer is an error.
    async fn send(
        &self,
        what: &str,
        method: Method,
        url: Url,
        headers: &[(&'static str, String)],
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, StoreError> {
        let mut attempt = 1;
        loop {
            let mut req = self.http.request(method.clone(), url.clone());
            for (name, value) in headers {
                req = req.header(*name, value);
            }
            if let Some(body) = &body {
                req = req.body(body.clone());
            }
            let err = match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    classify(what, status, &text)
                }
                Err(e) => StoreError::Unreachable(format!("{what}: {e}")),
            };
            if !err.is_transient() || attempt >= ATTEMPTS {
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            attempt += 1;
        }
    }

    /// Whether the bucket has Object Lock enabled (a bucket without any configuration answers
    /// with an error code, which means no).
    pub async fn facts(&self) -> Result<BucketFacts, StoreError> {
        // `GET /<bucket>?object-lock`, an action rusty-s3 does not name: signed by its signer.
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Get,
            self.bucket.base_url().clone(),
            self.credentials.key(),
            self.credentials.secret(),
            None,
            self.bucket.region(),
            SIGNED_FOR.as_secs(),
            std::iter::once(("object-lock", "")),
            std::iter::empty(),
        );
        let what = "reading the bucket's Object Lock configuration";
        match self.send(what, Method::GET, url, &[], None).await {
            Ok(resp) => {
                let body = resp.text().await.map_err(|e| StoreError::Unreachable(format!("{what}: {e}")))?;
                Ok(BucketFacts { object_lock: xml_field(&body, "ObjectLockEnabled") == Some("Enabled") })
            }
            Err(StoreError::Unusable(m)) if m.contains("ObjectLockConfigurationNotFoundError") => {
                Ok(BucketFacts { object_lock: false })
            }
            Err(e) => Err(e),
        }
    }

    pub fn upload(&self, key: &str, retention: Option<Retention>) -> Upload {
        let (writer, reader) = tokio::io::duplex(1024 * 1024);
        let (commit_tx, commit_rx) = oneshot::channel();
        let task = tokio::spawn(send_object(self.clone(), self.full(key), retention, reader, commit_rx));
        Upload { writer, commit: commit_tx, task }
    }

    pub async fn open(&self, key: &str, version: Option<&str>) -> Result<impl AsyncRead + Unpin + Send, StoreError> {
        let full = self.full(key);
        let mut action = self.bucket.get_object(Some(&self.credentials), &full);
        if let Some(v) = version {
            action.query_mut().insert("versionId", v.to_string());
        }
        let resp = self.send(&format!("reading {key}"), Method::GET, action.sign(SIGNED_FOR), &[], None).await?;
        let body = resp.bytes_stream().map_err(std::io::Error::other);
        Ok(tokio_util::io::StreamReader::new(body))
    }

    /// Deletes the version written (or the key, without Object Lock). Gone already is not an
    /// error; S3 refusing before the retention date is [`StoreError::Locked`].
    pub async fn delete(&self, key: &str, version: Option<&str>) -> Result<(), StoreError> {
        let full = self.full(key);
        let mut action = self.bucket.delete_object(Some(&self.credentials), &full);
        if let Some(v) = version {
            action.query_mut().insert("versionId", v.to_string());
        }
        match self.send(&format!("delete {key}"), Method::DELETE, action.sign(SIGNED_FOR), &[], None).await {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Keys (without the store's prefix) of complete objects under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(self.full(prefix));
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let resp = self.send("listing objects", Method::GET, action.sign(SIGNED_FOR), &[], None).await?;
            let text = resp.text().await.map_err(|e| StoreError::Unreachable(format!("listing objects: {e}")))?;
            let page = ListObjectsV2::parse_response(&text)
                .map_err(|e| StoreError::Unusable(format!("listing objects: an answer that does not parse: {e}")))?;
            out.extend(
                page.contents.into_iter().filter_map(|o| o.key.strip_prefix(&self.loc.prefix).map(str::to_string)),
            );
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
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

/// One part sent: its number, ETag and SHA-256 (all three go into the completion).
struct Part {
    number: u16,
    etag: String,
    sha256: String,
}

/// The body of `CompleteMultipartUpload`, written here rather than by rusty-s3's action: its
/// body names ETags only, and an upload created with a checksum algorithm must list each
/// part's checksum too.
fn completion(parts: &[Part]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for p in parts {
        xml.push_str(&format!(
            "<Part><ETag>{}</ETag><PartNumber>{}</PartNumber><ChecksumSHA256>{}</ChecksumSHA256></Part>",
            p.etag.replace('&', "&amp;").replace('<', "&lt;"),
            p.number,
            p.sha256
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

async fn send_object(
    store: S3Store,
    key: String,
    retention: Option<Retention>,
    mut reader: DuplexStream,
    commit: oneshot::Receiver<()>,
) -> Result<Option<String>, StoreError> {
    let s = &store;
    let first = read_part(&mut reader).await?;
    if first.len() < PART_SIZE {
        // The whole object fits in one request; sent only once the writer commits.
        if commit.await.is_err() {
            return Err(StoreError::Unusable("the upload was abandoned".into()));
        }
        let mut headers = lock_headers(retention);
        // The algorithm named beside the value: S3 takes either as the integrity check an
        // Object Lock write requires.
        headers.push(("x-amz-sdk-checksum-algorithm", "SHA256".to_string()));
        headers.push(("x-amz-checksum-sha256", sha256_b64(&first)));
        let url = signed(s.bucket.put_object(Some(&s.credentials), &key), &headers);
        let resp = s.send(&format!("writing {key}"), Method::PUT, url, &headers, Some(Bytes::from(first))).await?;
        return Ok(version_of(&resp));
    }
    let mut headers = lock_headers(retention);
    headers.push(("x-amz-checksum-algorithm", "SHA256".to_string()));
    let url = signed(s.bucket.create_multipart_upload(Some(&s.credentials), &key), &headers);
    let what = format!("starting the upload of {key}");
    let resp = s.send(&what, Method::POST, url, &headers, None).await?;
    let text = resp.text().await.map_err(|e| StoreError::Unreachable(format!("{what}: {e}")))?;
    let upload_id = CreateMultipartUpload::parse_response(&text)
        .map_err(|e| StoreError::Unusable(format!("{what}: an answer that does not parse: {e}")))?
        .upload_id()
        .to_string();
    let parts = async {
        let mut parts = Vec::new();
        let mut data = first;
        let mut number: u16 = 1;
        while !data.is_empty() {
            let sha256 = sha256_b64(&data);
            let headers =
                [("x-amz-sdk-checksum-algorithm", "SHA256".to_string()), ("x-amz-checksum-sha256", sha256.clone())];
            let url = signed(s.bucket.upload_part(Some(&s.credentials), &key, number, &upload_id), &headers);
            let what = format!("writing part {number} of {key}");
            let resp = s.send(&what, Method::PUT, url, &headers, Some(Bytes::from(data))).await?;
            let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            parts.push(Part { number, etag, sha256 });
            number = number
                .checked_add(1)
                .ok_or_else(|| StoreError::Unusable(format!("{key} needs more parts than S3 allows")))?;
            data = read_part(&mut reader).await?;
        }
        Ok::<_, StoreError>(parts)
    }
    .await;
    let committed = match parts {
        Ok(parts) if commit.await.is_ok() => Some(parts),
        Ok(_) => None,
        Err(e) => {
            abort(s, &key, &upload_id).await;
            return Err(e);
        }
    };
    let Some(parts) = committed else {
        abort(s, &key, &upload_id).await;
        return Err(StoreError::Unusable("the upload was abandoned".into()));
    };
    let url =
        s.bucket.complete_multipart_upload(Some(&s.credentials), &key, &upload_id, std::iter::empty()).sign(SIGNED_FOR);
    let what = format!("completing the upload of {key}");
    let resp = s.send(&what, Method::POST, url, &[], Some(Bytes::from(completion(&parts)))).await?;
    let version = version_of(&resp);
    // S3 may answer 200 and report a failure in the body.
    let text = resp.text().await.map_err(|e| StoreError::Unreachable(format!("{what}: {e}")))?;
    if text.contains("<Error>") {
        return Err(classify(&what, 500, &text));
    }
    Ok(version)
}

async fn abort(store: &S3Store, key: &str, upload_id: &str) {
    let url = store.bucket.abort_multipart_upload(Some(&store.credentials), key, upload_id).sign(SIGNED_FOR);
    if let Err(e) = store.send(&format!("aborting the upload of {key}"), Method::DELETE, url, &[], None).await {
        tracing::warn!(key, error = %e, "aborting a multipart upload failed");
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    #[test]
    fn s3_errors_map_to_store_errors() {
        let doc = |code: &str| format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>");
        assert!(matches!(classify("reading k", 404, &doc("NoSuchKey")), StoreError::NotFound(_)));
        assert!(matches!(classify("reading k", 404, ""), StoreError::NotFound(_)));
        assert!(matches!(classify("delete k", 403, &doc("AccessDenied")), StoreError::Locked(_)));
        assert!(matches!(classify("reading k", 403, &doc("AccessDenied")), StoreError::Unusable(_)));
        assert!(matches!(classify("writing k", 503, &doc("SlowDown")), StoreError::Unreachable(_)));
        assert!(matches!(classify("writing k", 502, ""), StoreError::Unreachable(_)));
        assert!(matches!(classify("writing k", 404, &doc("NoSuchBucket")), StoreError::Unusable(_)));
    }

    #[test]
    fn the_completion_names_every_part_with_its_checksum() {
        let parts = [
            Part { number: 1, etag: "\"a1\"".into(), sha256: "c1==".into() },
            Part { number: 2, etag: "\"b2\"".into(), sha256: "c2==".into() },
        ];
        let xml = completion(&parts);
        assert!(xml.contains(
            "<Part><ETag>\"a1\"</ETag><PartNumber>1</PartNumber><ChecksumSHA256>c1==</ChecksumSHA256></Part>"
        ));
        assert!(xml.ends_with(
            "<PartNumber>2</PartNumber><ChecksumSHA256>c2==</ChecksumSHA256></Part></CompleteMultipartUpload>"
        ));
    }

    #[test]
    fn retention_goes_in_signed_headers() {
        let until = DateTime::parse_from_rfc3339("2027-01-02T03:04:05Z").unwrap().with_timezone(&Utc);
        let h = lock_headers(Some(Retention { mode: LockMode::Compliance, until }));
        assert_eq!(h[0], ("x-amz-object-lock-mode", "COMPLIANCE".to_string()));
        assert_eq!(h[1], ("x-amz-object-lock-retain-until-date", "2027-01-02T03:04:05Z".to_string()));
        assert!(lock_headers(None).is_empty());
    }
}
