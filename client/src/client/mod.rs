//! A typed reqwest client for the `/v1` API.

pub mod reads;
pub mod refresh;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use crate::models::*;
use reads::Coalescer;
use refresh::Snapshots;
use retry::{error_of, retry_wait, RateLimited, Retry};
pub use retry::{MAX_RETRIES, MAX_RETRY_TOTAL, MAX_RETRY_WAIT};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with a problem document.
    #[error("{} {}: {}", .0.status, .0.code, .0.detail)]
    Api(Box<Problem>),
    /// The API could not be reached or answered with something that is not our JSON.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("unexpected response {status}: {body}")]
    Unexpected { status: u16, body: String },
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ClientError {
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Api(p) => Some(p),
            _ => None,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api(p) => Some(p.status),
            Self::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A response with the HTTP status kept (202 vs 200 matters to callers).
#[derive(Debug)]
pub struct Response<T> {
    pub status: u16,
    pub etag: Option<String>,
    pub body: T,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: String,
    /// `get_database` asks for a live drift check instead of the reconciler's last result.
    fresh_drift: bool,
    /// Reads waiting to be sent together ([`Client::read_database`]), shared by clones.
    reads: Arc<Coalescer>,
    /// Tenants' snapshots for refreshes ([`Client::refresh_database`]), shared by clones.
    snapshots: Arc<Snapshots>,
}

impl Client {
    /// `endpoint` is the base URL (`http://127.0.0.1:8080`), `token` a bearer token.
    pub fn new(endpoint: &str, token: &str) -> Result<Self, ClientError> {
        Self::with_ca(endpoint, token, None)
    }

    /// Like [`Client::new`], trusting `ca_pem` in addition to the system roots.
    pub fn with_ca(endpoint: &str, token: &str, ca_pem: Option<&str>) -> Result<Self, ClientError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ClientError::Config(format!("endpoint {endpoint:?} must start with http:// or https://")));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("dbaas-client/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| ClientError::Config(format!("ca_cert is not a PEM certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(Self {
            http: builder.build()?,
            endpoint,
            token: token.to_string(),
            fresh_drift: false,
            reads: Arc::default(),
            snapshots: Arc::default(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn fresh_drift(&self) -> bool {
        self.fresh_drift
    }

    pub(crate) fn coalescer(&self) -> &Coalescer {
        &self.reads
    }

    pub(crate) fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// A copy of this client whose `get_database` compares with the instance's catalog now
    /// (`?fresh=true`, rate-limited per tenant) instead of returning the stored drift.
    pub fn with_fresh_drift(&self, fresh: bool) -> Self {
        Self { fresh_drift: fresh, ..self.clone() }
    }

    /// A copy of this client using another token (its reads are batched and snapshotted
    /// apart: what one token reads is never an answer for another).
    pub fn with_token(&self, token: &str) -> Self {
        Self { token: token.to_string(), reads: Arc::default(), snapshots: Arc::default(), ..self.clone() }
    }

    /// The bearer token this client sends (for calls outside the typed API, e.g. scrapes).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Sends a request and decodes a JSON body or a problem document. An answer 429 (rate
    /// limited: the request was not acted on) is retried after its `Retry-After`, or after
    /// 1, 2, 4, 8 s without one, each wait at most [`MAX_RETRY_WAIT`] and all of them at most
    /// [`MAX_RETRY_TOTAL`]; then the 429 is the answer.
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(&str, String)],
        timeout: Option<Duration>,
    ) -> Result<Response<T>, ClientError> {
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        loop {
            match self.send_once(method.clone(), path, body, headers, timeout).await {
                Err(Retry::After(hint)) => {
                    let wait = retry_wait(&hint, attempt);
                    if attempt >= MAX_RETRIES || waited + wait > MAX_RETRY_TOTAL {
                        return Err(Retry::After(hint).into_error());
                    }
                    tokio::time::sleep(wait).await;
                    waited += wait;
                    attempt += 1;
                }
                Err(Retry::No(e)) => return Err(e),
                Ok(r) => return Ok(r),
            }
        }
    }

    /// [`Client::send`] without retrying a 429.
    pub async fn send_no_retry<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Response<T>, ClientError> {
        self.send_once(method, path, body, &[], None).await.map_err(Retry::into_error)
    }

    async fn send_once<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(&str, String)],
        timeout: Option<Duration>,
    ) -> Result<Response<T>, Retry> {
        let mut req = self.http.request(method, format!("{}{}", self.endpoint, path)).bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req = req.timeout(timeout.unwrap_or(Duration::from_secs(60)));
        let resp = req.send().await.map_err(|e| Retry::No(e.into()))?;
        let status = resp.status();
        let etag = resp.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.map_err(|e| Retry::No(e.into()))?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Retry::After(RateLimited { retry_after, bytes: bytes.to_vec() }));
        }
        if status.is_success() {
            let body = if status == StatusCode::NO_CONTENT && bytes.is_empty() {
                serde_json::from_slice(b"null")
            } else {
                serde_json::from_slice(&bytes)
            };
            return match body {
                Ok(body) => Ok(Response { status: status.as_u16(), etag, body }),
                Err(_) => Err(Retry::No(ClientError::Unexpected {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                })),
            };
        }
        Err(Retry::No(error_of(status.as_u16(), &bytes)))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Ok(self.send::<(), T>(Method::GET, path, None, &[], None).await?.body)
    }

    /// Every item of a paged list, following `next_cursor` page after page.
    async fn get_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ClientError> {
        let mut items = Vec::new();
        let mut page: List<T> = self.get(path).await?;
        loop {
            items.append(&mut page.items);
            let Some(cursor) = page.next_cursor.take() else { return Ok(items) };
            let sep = if path.contains('?') { '&' } else { '?' };
            page = self.get(&format!("{path}{sep}cursor={cursor}")).await?;
        }
    }

    /// One page of a list: its items and the cursor of the next page, if any.
    pub async fn list_page<T: DeserializeOwned>(&self, path: &str) -> Result<List<T>, ClientError> {
        self.get(path).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        Ok(self.send(Method::POST, path, Some(body), &[], None).await?.body)
    }

    // ------------------------------------------------------------ tenants & tokens

    pub async fn create_tenant(&self, req: &CreateTenant) -> Result<Tenant, ClientError> {
        self.post("/v1/tenants", req).await
    }
    pub async fn get_tenant(&self, name: &str) -> Result<Tenant, ClientError> {
        self.get(&format!("/v1/tenants/{name}")).await
    }
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, ClientError> {
        self.get_all::<Tenant>("/v1/tenants").await
    }
    pub async fn delete_tenant(&self, name: &str) -> Result<(), ClientError> {
        self.send::<(), serde_json::Value>(Method::DELETE, &format!("/v1/tenants/{name}"), None, &[], None)
            .await
            .map(|_| ())
    }
    pub async fn create_token(&self, req: &CreateToken) -> Result<CreatedToken, ClientError> {
        self.post("/v1/tokens", req).await
    }
    pub async fn revoke_token(&self, id: Uuid) -> Result<Token, ClientError> {
        self.post(&format!("/v1/tokens/{id}/revoke"), &serde_json::json!({})).await
    }

    // ------------------------------------------------------------ instances

    pub async fn create_instance(&self, req: &CreateInstance) -> Result<Instance, ClientError> {
        self.post("/v1/instances", req).await
    }
    pub async fn get_instance(&self, name: &str) -> Result<Instance, ClientError> {
        self.get(&format!("/v1/instances/{name}")).await
    }
    pub async fn list_instances(&self) -> Result<Vec<Instance>, ClientError> {
        self.get_all::<Instance>("/v1/instances").await
    }
    /// PATCH; a settings change of a managed instance runs as an operation (`last_operation_id`).
    pub async fn update_instance(&self, name: &str, req: &UpdateInstance) -> Result<Instance, ClientError> {
        Ok(self.send(Method::PATCH, &format!("/v1/instances/{name}"), Some(req), &[], None).await?.body)
    }
    /// DELETE. A managed instance is removed by an operation and comes back `deleting`; an
    /// external one is unregistered at once (`None`). `force` also drops its databases (admin).
    pub async fn delete_instance(&self, name: &str, force: bool) -> Result<Option<Instance>, ClientError> {
        let path = format!("/v1/instances/{name}{}", if force { "?force=true" } else { "" });
        Ok(self.send::<(), _>(Method::DELETE, &path, None, &[], None).await?.body)
    }
    /// Start, stop or restart a managed instance (an operation).
    pub async fn instance_action(&self, name: &str, action: InstanceActionKind) -> Result<Instance, ClientError> {
        self.post(&format!("/v1/instances/{name}/actions"), &InstanceAction { action }).await
    }

    // ------------------------------------------------------------ hosts

    pub async fn create_host(&self, req: &CreateHost) -> Result<Host, ClientError> {
        self.post("/v1/hosts", req).await
    }
    pub async fn get_host(&self, name: &str) -> Result<Host, ClientError> {
        self.get(&format!("/v1/hosts/{name}")).await
    }
    pub async fn list_hosts(&self) -> Result<Vec<Host>, ClientError> {
        self.get_all::<Host>("/v1/hosts").await
    }
    /// `POST /v1/auth/oidc`: the identity token is the credential (this client's own token, if any, is ignored).
    pub async fn oidc_exchange(&self, req: &OidcExchange) -> Result<OidcToken, ClientError> {
        self.post("/v1/auth/oidc", req).await
    }
    pub async fn create_oidc_binding(&self, req: &CreateOidcBinding) -> Result<OidcBinding, ClientError> {
        self.post("/v1/oidc-bindings", req).await
    }
    pub async fn list_oidc_bindings(&self) -> Result<Vec<OidcBinding>, ClientError> {
        Ok(self.get::<List<OidcBinding>>("/v1/oidc-bindings").await?.items)
    }
    pub async fn delete_oidc_binding(&self, id: Uuid) -> Result<(), ClientError> {
        self.send::<(), serde_json::Value>(Method::DELETE, &format!("/v1/oidc-bindings/{id}"), None, &[], None)
            .await
            .map(|_| ())
    }
    pub async fn update_host(&self, name: &str, req: &UpdateHost) -> Result<Host, ClientError> {
        Ok(self.send(Method::PATCH, &format!("/v1/hosts/{name}"), Some(req), &[], None).await?.body)
    }
    pub async fn delete_host(&self, name: &str) -> Result<(), ClientError> {
        self.send::<(), serde_json::Value>(Method::DELETE, &format!("/v1/hosts/{name}"), None, &[], None)
            .await
            .map(|_| ())
    }

    // ------------------------------------------------------------ databases

    pub async fn create_database(&self, req: &CreateDatabase) -> Result<DatabaseAccepted, ClientError> {
        self.post("/v1/databases", req).await
    }
    /// POST with an `Idempotency-Key`; the status (201/202 vs a replay) is kept.
    pub async fn create_database_idempotent(
        &self,
        req: &CreateDatabase,
        key: &str,
    ) -> Result<Response<DatabaseAccepted>, ClientError> {
        self.send(Method::POST, "/v1/databases", Some(req), &[("Idempotency-Key", key.to_string())], None).await
    }
    /// The database with the drift the reconciler found last (`drift.checked_at`), or a live
    /// one with [`Client::with_fresh_drift`].
    pub async fn get_database(&self, id: Uuid) -> Result<Database, ClientError> {
        if self.fresh_drift {
            // Live checks are limited per tenant; past the allowance the stored comparison
            // (its `checked_at` says how old) is used rather than failing a whole plan, and
            // marked so (the provider says so in a warning). No waiting: the allowance is per
            // minute, and the stored comparison is at most a reconciler interval old.
            match self.send_no_retry::<(), Database>(Method::GET, &format!("/v1/databases/{id}?fresh=true"), None).await
            {
                Err(e) if e.status() == Some(429) => {}
                r => return r.map(|r| r.body),
            }
            let mut db: Database = self.get(&format!("/v1/databases/{id}")).await?;
            if let Some(d) = db.drift.as_mut() {
                d.stored_instead_of_fresh = true;
            }
            return Ok(db);
        }
        self.get(&format!("/v1/databases/{id}")).await
    }
    /// The database compared with the instance's catalog now (rate-limited per tenant: 429).
    pub async fn get_database_fresh(&self, id: Uuid) -> Result<Database, ClientError> {
        self.get(&format!("/v1/databases/{id}?fresh=true")).await
    }
    /// Looks a database up by `tenant/name`.
    pub async fn find_database(&self, tenant: &str, name: &str) -> Result<Database, ClientError> {
        let fresh = if self.fresh_drift { "?fresh=true" } else { "" };
        self.get(&format!("/v1/tenants/{tenant}/databases/{name}{fresh}")).await
    }
    pub async fn list_databases(&self, query: &str) -> Result<Vec<Database>, ClientError> {
        let q = if query.is_empty() { String::new() } else { format!("?{query}") };
        self.get_all::<Database>(&format!("/v1/databases{q}")).await
    }
    pub async fn update_database(&self, id: Uuid, req: &UpdateDatabase) -> Result<DatabaseAccepted, ClientError> {
        Ok(self.send(Method::PATCH, &format!("/v1/databases/{id}"), Some(req), &[], None).await?.body)
    }
    /// DELETE; `force` drops a protected database (admin only).
    pub async fn delete_database(&self, id: Uuid, force: bool) -> Result<DatabaseAccepted, ClientError> {
        let path = format!("/v1/databases/{id}{}", if force { "?force=true" } else { "" });
        Ok(self.send::<(), _>(Method::DELETE, &path, None, &[], None).await?.body)
    }
    /// Deletes, saying whether to take a final backup first (None: the environment's policy).
    pub async fn delete_database_with(
        &self,
        id: Uuid,
        force: bool,
        final_backup: Option<bool>,
    ) -> Result<DatabaseAccepted, ClientError> {
        let mut q = vec![];
        if force {
            q.push("force=true".to_string());
        }
        if let Some(f) = final_backup {
            q.push(format!("final_backup={f}"));
        }
        let path = format!("/v1/databases/{id}{}{}", if q.is_empty() { "" } else { "?" }, q.join("&"));
        Ok(self.send::<(), _>(Method::DELETE, &path, None, &[], None).await?.body)
    }

    /// Re-runs provisioning: restores what was dropped by hand.
    pub async fn reconcile_database(&self, id: Uuid) -> Result<DatabaseAccepted, ClientError> {
        self.post(&format!("/v1/databases/{id}/reconcile"), &serde_json::json!({})).await
    }

    // ------------------------------------------------------------ credentials

    pub async fn list_credentials(&self, database: Uuid) -> Result<Vec<Credential>, ClientError> {
        self.get_all::<Credential>(&format!("/v1/databases/{database}/credentials")).await
    }
    pub async fn get_credential(&self, database: Uuid, access: Access) -> Result<Credential, ClientError> {
        self.get(&format!("/v1/databases/{database}/credentials/{}", access.as_str())).await
    }
    pub async fn rotate_credential(&self, database: Uuid, access: Access) -> Result<RotationAccepted, ClientError> {
        self.post(&format!("/v1/databases/{database}/credentials/{}/rotate", access.as_str()), &serde_json::json!({}))
            .await
    }
    pub async fn create_lease(&self, database: Uuid, req: &CreateLease) -> Result<CredentialAccepted, ClientError> {
        self.post(&format!("/v1/databases/{database}/leases"), req).await
    }
    pub async fn get_lease(&self, database: Uuid, lease: Uuid) -> Result<Credential, ClientError> {
        self.get(&format!("/v1/databases/{database}/leases/{lease}")).await
    }
    pub async fn revoke_lease(&self, database: Uuid, lease: Uuid) -> Result<CredentialAccepted, ClientError> {
        let path = format!("/v1/databases/{database}/leases/{lease}");
        Ok(self.send::<(), _>(Method::DELETE, &path, None, &[], None).await?.body)
    }

    // ------------------------------------------------------------ backups

    pub async fn create_backup_store(&self, req: &CreateBackupStore) -> Result<BackupStore, ClientError> {
        self.post("/v1/backup-stores", req).await
    }
    pub async fn list_backup_stores(&self) -> Result<Vec<BackupStore>, ClientError> {
        self.get_all::<BackupStore>("/v1/backup-stores").await
    }
    pub async fn create_backup(&self, database: Uuid, req: &CreateBackup) -> Result<BackupAccepted, ClientError> {
        self.post(&format!("/v1/databases/{database}/backups"), req).await
    }
    pub async fn list_backups(&self, database: Uuid) -> Result<Vec<Backup>, ClientError> {
        self.get_all::<Backup>(&format!("/v1/databases/{database}/backups")).await
    }
    pub async fn get_backup(&self, id: Uuid) -> Result<Backup, ClientError> {
        self.get(&format!("/v1/backups/{id}")).await
    }
    pub async fn delete_backup(&self, id: Uuid) -> Result<(), ClientError> {
        self.send::<(), serde_json::Value>(Method::DELETE, &format!("/v1/backups/{id}"), None, &[], None).await?;
        Ok(())
    }
    pub async fn verify_backup(&self, id: Uuid) -> Result<BackupAccepted, ClientError> {
        self.post(&format!("/v1/backups/{id}/verify"), &serde_json::json!({})).await
    }
    /// Restores a backup into a new database or in place.
    pub async fn restore_database(
        &self,
        database: Uuid,
        req: &RestoreRequest,
    ) -> Result<DatabaseAccepted, ClientError> {
        self.post(&format!("/v1/databases/{database}/restore"), req).await
    }
    /// The times a restore of the database to a point in time accepts.
    pub async fn database_recovery(&self, database: Uuid) -> Result<DatabaseRecoveryWindow, ClientError> {
        self.get(&format!("/v1/databases/{database}/recovery")).await
    }
    /// A managed instance's recovery window, base backups and archiving health (admin).
    pub async fn instance_recovery(&self, name: &str) -> Result<RecoveryWindow, ClientError> {
        self.get(&format!("/v1/instances/{name}/recovery")).await
    }
    /// Enqueues a base backup of a managed instance (admin).
    pub async fn create_base_backup(&self, name: &str, kind: BaseBackupKind) -> Result<Operation, ClientError> {
        self.post(&format!("/v1/instances/{name}/base-backups"), &CreateBaseBackup { kind }).await
    }
    /// Enqueues a point-in-time drill of a managed instance (admin).
    pub async fn create_pitr_drill(&self, name: &str) -> Result<Operation, ClientError> {
        self.post(&format!("/v1/instances/{name}/recovery/drills"), &serde_json::json!({})).await
    }
    /// Restores a managed instance to a point in time, in place or into a new one (admin).
    pub async fn restore_instance(&self, name: &str, req: &RestoreInstance) -> Result<Instance, ClientError> {
        self.post(&format!("/v1/instances/{name}/restore"), req).await
    }
    /// Swaps the database kept by an in-place restore back in.
    pub async fn undo_restore(&self, database: Uuid, req: &UndoRestore) -> Result<DatabaseAccepted, ClientError> {
        self.post(&format!("/v1/databases/{database}/restore/undo"), req).await
    }
    pub async fn list_backup_policies(&self) -> Result<Vec<BackupPolicy>, ClientError> {
        self.get_all::<BackupPolicy>("/v1/backup-policies").await
    }
    pub async fn put_backup_policy(&self, policy: &BackupPolicy) -> Result<BackupPolicy, ClientError> {
        let path = format!("/v1/backup-policies/{}", policy.environment.as_str());
        Ok(self.send(Method::PUT, &path, Some(policy), &[], None).await?.body)
    }

    // ------------------------------------------------------------ metrics

    pub async fn database_metrics(&self, database: Uuid) -> Result<DatabaseMetrics, ClientError> {
        self.get(&format!("/v1/databases/{database}/metrics")).await
    }
    pub async fn prometheus_targets(&self) -> Result<Vec<PrometheusTarget>, ClientError> {
        self.get("/v1/prometheus/targets").await
    }

    // ------------------------------------------------------------ maintenance

    pub async fn start_maintenance(
        &self,
        database: Uuid,
        req: &CreateMaintenance,
    ) -> Result<MaintenanceAccepted, ClientError> {
        self.post(&format!("/v1/databases/{database}/maintenance"), req).await
    }

    pub async fn create_schedule(&self, database: Uuid, req: &CreateSchedule) -> Result<Schedule, ClientError> {
        self.post(&format!("/v1/databases/{database}/schedules"), req).await
    }
    pub async fn list_schedules(&self, database: Uuid) -> Result<Vec<Schedule>, ClientError> {
        self.get_all::<Schedule>(&format!("/v1/databases/{database}/schedules")).await
    }
    pub async fn get_schedule(&self, database: Uuid, id: Uuid) -> Result<Schedule, ClientError> {
        self.get(&format!("/v1/databases/{database}/schedules/{id}")).await
    }
    pub async fn update_schedule(
        &self,
        database: Uuid,
        id: Uuid,
        req: &UpdateSchedule,
    ) -> Result<Schedule, ClientError> {
        Ok(self
            .send(Method::PATCH, &format!("/v1/databases/{database}/schedules/{id}"), Some(req), &[], None)
            .await?
            .body)
    }
    pub async fn delete_schedule(&self, database: Uuid, id: Uuid) -> Result<(), ClientError> {
        let path = format!("/v1/databases/{database}/schedules/{id}");
        self.send::<(), serde_json::Value>(Method::DELETE, &path, None, &[], None).await.map(|_| ())
    }
    /// Sets (or with None clears) an instance's maintenance window (admin).
    pub async fn set_maintenance_window(
        &self,
        instance: &str,
        window: Option<&MaintenanceWindow>,
    ) -> Result<Instance, ClientError> {
        let path = format!("/v1/instances/{instance}/maintenance-window");
        match window {
            Some(w) => Ok(self.send(Method::PUT, &path, Some(w), &[], None).await?.body),
            None => Ok(self.send::<(), Instance>(Method::DELETE, &path, None, &[], None).await?.body),
        }
    }

    // ------------------------------------------------------------ operations

    pub async fn get_operation(&self, id: Uuid) -> Result<Operation, ClientError> {
        self.get(&format!("/v1/operations/{id}")).await
    }
    pub async fn operation_logs(&self, id: Uuid) -> Result<Vec<OperationLog>, ClientError> {
        self.get_all::<OperationLog>(&format!("/v1/operations/{id}/logs")).await
    }
    pub async fn list_operations(&self, query: &str) -> Result<Vec<Operation>, ClientError> {
        let q = if query.is_empty() { String::new() } else { format!("?{query}") };
        self.get_all::<Operation>(&format!("/v1/operations{q}")).await
    }
    pub async fn cancel_operation(&self, id: Uuid) -> Result<Operation, ClientError> {
        self.post(&format!("/v1/operations/{id}/cancel"), &serde_json::json!({})).await
    }

    /// Long-polls until the operation ends or `limit` passes; returns its last state.
    pub async fn wait_operation(&self, id: Uuid, limit: Duration) -> Result<Operation, ClientError> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let wait = left.min(Duration::from_secs(30)).as_secs().max(1);
            let op: Operation = self
                .send::<(), Operation>(
                    Method::GET,
                    &format!("/v1/operations/{id}?wait={wait}s"),
                    None,
                    &[],
                    Some(Duration::from_secs(wait + 30)),
                )
                .await?
                .body;
            if op.status.is_terminal() || left.is_zero() {
                return Ok(op);
            }
        }
    }
}
