//! What the API accepts for managed instances, checked against the host before anything is
//! made: create (host, version, port, settings, extensions), settings changes and delete,
//! each recorded with its operation.

use dbaas_client::{
    CreateInstance, Instance, InstanceActionKind, InstanceStatus, OperationKind, RecoveryTarget, Settings,
};
use uuid::Uuid;

use crate::jobs;
use crate::node::{instance_dir, Node};
use crate::settings::{check_syntax, check_values, scratch_dir};
use crate::SERVICE_ADMIN;
use dbaas_domain::catalog::conn::{InstanceRow, ManagedState};
use dbaas_domain::catalog::registration::check_common;
use dbaas_domain::error::{ApiError, ApiResult, FieldErrors};
use dbaas_domain::state::AppState;
use dbaas_engine::Payload;
use dbaas_hosts::executor::{Command, ExecError, Executor};
use dbaas_hosts::HostExec;
use dbaas_hosts::HostRecord;
use dbaas_store::instances::by_name;

/// A host that cannot be used right now is the caller's problem to fix: 422 on `host`.
fn host_error(e: ExecError) -> ApiError {
    match e {
        ExecError::HostKeyMismatch(m) => ApiError::field(
            "host",
            "host_key_mismatch",
            format!("the host's SSH key is not the registered one (re-register the host if it was rebuilt): {m}"),
        ),
        ExecError::Unreachable(m) | ExecError::Timeout(m) => {
            ApiError::field("host", "host_unreachable", format!("cannot reach the host: {m}"))
        }
        other => ApiError::Unprocessable("host_check_failed", format!("checking the host failed: {other}")),
    }
}

/// Settings checked by name, then by the server binary on the host.
async fn check_settings(exec: &HostExec, host: &HostRecord, bin: &str, settings: &Settings) -> ApiResult<()> {
    let mut errs = FieldErrors::default();
    for (name, code, msg) in check_syntax(settings) {
        errs.add(&format!("settings.{name}"), code, msg);
    }
    errs.into_result()?;
    if settings.is_empty() {
        return Ok(());
    }
    let scratch = scratch_dir(exec, &host.data_root).await.map_err(host_error)?;
    let mut errs = FieldErrors::default();
    for (name, code, msg) in check_values(exec, bin, &scratch, settings).await.map_err(host_error)? {
        errs.add(&if name.is_empty() { "settings".into() } else { format!("settings.{name}") }, code, msg);
    }
    errs.into_result()
}

/// Validates a create request against the host, allocates a port, records the instance and
/// enqueues its provisioning, all before answering 202.
pub async fn create(s: &AppState, req: CreateInstance) -> ApiResult<Instance> {
    create_with(s, req, None).await
}

/// A new managed instance like `source` (host, version, settings, environment, tenancy), built
/// from `source`'s repository recovered to `to` instead of `initdb`.
pub async fn create_restored(
    s: &AppState,
    source: &InstanceRow,
    name: &str,
    to: RecoveryTarget,
) -> ApiResult<Instance> {
    let req = CreateInstance {
        name: name.to_string(),
        kind: dbaas_client::InstanceKind::Managed,
        host: source.host_name.clone().unwrap_or_default(),
        port: None,
        public_host: None,
        admin_user: None,
        admin_password: None,
        sslmode: dbaas_client::SslMode::VerifyFull,
        ca_cert: None,
        version: source.pg_version.clone(),
        settings: source.settings.0.clone(),
        dedicated_tenant: source.dedicated_tenant.clone(),
        protected: source.protected,
        auto_restart: source.auto_restart,
        environment: source.environment,
        labels: source.labels.0.clone(),
        max_databases: source.max_databases,
        allowed_extensions: source.allowed_extensions.clone(),
    };
    let job = crate::pitr::instance_restore::RestoreInstance { to, from: Some(source.id) };
    create_with(s, req, Some(&job)).await
}

async fn create_with(
    s: &AppState,
    req: CreateInstance,
    seeded: Option<&crate::pitr::instance_restore::RestoreInstance>,
) -> ApiResult<Instance> {
    let mut errs = FieldErrors::default();
    let dedicated = check_common(s, &req, &mut errs).await?;
    for (field, given) in [
        ("admin_user", req.admin_user.is_some()),
        ("admin_password", req.admin_password.is_some()),
        ("ca_cert", req.ca_cert.is_some()),
    ] {
        if given {
            errs.add(
                field,
                "external_only",
                "a managed instance gets its admin login and certificate from the service",
            );
        }
    }
    let host = HostRecord::by_name(&s.db, &req.host).await?;
    if host.is_none() {
        errs.add("host", "unknown_host", format!("no registered host named {:?} (POST /v1/hosts)", req.host));
    }
    let version = req.version.clone().unwrap_or_default();
    let bin = host.as_ref().and_then(|h| h.bin_dir(&version));
    match (&host, &req.version, &bin) {
        (_, None, _) => errs.add("version", "required", "the PostgreSQL major version to run, e.g. \"15\""),
        (Some(h), Some(v), None) => {
            let have: Vec<&str> = h.pg_versions.0.iter().map(|p| p.version.as_str()).collect();
            errs.add(
                "version",
                "unknown_version",
                format!("host {} has no PostgreSQL {v}; it has {}", h.name, have.join(", ")),
            );
        }
        _ => {}
    }
    if let (Some(h), Some(p)) = (&host, req.port) {
        if !(h.port_range_start..=h.port_range_end).contains(&i32::from(p)) {
            errs.add(
                "port",
                "out_of_range",
                format!("must be within the host's range {}-{}", h.port_range_start, h.port_range_end),
            );
        }
    }
    errs.into_result()?;
    let (Some(host), Some(bin)) = (host, bin) else { return Err(ApiError::NotFound("host")) };
    if by_name(&s.db, &req.name).await?.is_some() {
        return Err(ApiError::Conflict("already_exists", format!("instance {:?} already exists", req.name)));
    }

    let exec = s.hosts.get(&host, &s.key).await.map_err(host_error)?;
    check_settings(&exec, &host, &bin, &req.settings).await?;
    check_extensions(&exec, &bin, &req.allowed_extensions).await?;
    let port = choose_port(s, &exec, &host, req.port).await?;

    let id = Uuid::new_v4();
    let password = dbaas_crypto::generate_password();
    let address = host.instance_address();
    let state = ManagedState { data_dir: instance_dir(&host.data_root, &req.name, id), ready_in_ms: None };
    let mut tx = s.db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO instances (id, name, kind, status, host, port, public_host, admin_user, admin_password_enc, sslmode, \
         environment, labels, max_databases, allowed_extensions, host_id, pg_version, settings, dedicated_tenant_id, \
         protected, auto_restart, managed) \
         VALUES ($1, $2, 'managed', 'provisioning', $3, $4, $5, $6, $7, 'verify-full', $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(id)
    .bind(&req.name)
    .bind(&address)
    .bind(i32::from(port))
    .bind(req.public_host.as_deref().unwrap_or(&address))
    .bind(SERVICE_ADMIN)
    .bind(s.key.encrypt(&password, &format!("instance:{id}")))
    .bind(req.environment.as_str())
    .bind(sqlx::types::Json(&req.labels))
    .bind(req.max_databases)
    .bind(&req.allowed_extensions)
    .bind(host.id)
    .bind(&version)
    .bind(sqlx::types::Json(&req.settings))
    .bind(dedicated)
    .bind(req.protected)
    .bind(req.auto_restart)
    .bind(sqlx::types::Json(&state))
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(e)) = &inserted {
        if e.constraint() == Some("instances_host_port") {
            return Err(ApiError::Conflict(
                "port_taken",
                format!("port {port} was just taken by another instance on {}; retry", host.name),
            ));
        }
    }
    inserted?;
    let row =
        dbaas_domain::catalog::record::load_instance(&mut *tx, id).await?.ok_or(ApiError::NotFound("instance"))?;
    match seeded {
        Some(job) => crate::enqueue(&mut tx, row.id, job).await?,
        None => crate::enqueue(&mut tx, row.id, &jobs::ProvisionInstance::default()).await?,
    };
    tx.commit().await?;
    Ok(by_name(&s.db, &req.name).await?.ok_or(ApiError::NotFound("instance"))?.to_model())
}

/// The requested port if it is free, else the lowest free one of the host's range. Free means:
/// no live instance of ours has it and nothing listens on it on the host.
async fn choose_port(s: &AppState, exec: &HostExec, host: &HostRecord, wanted: Option<u16>) -> ApiResult<u16> {
    let ours: Vec<i32> = sqlx::query_scalar("SELECT port FROM instances WHERE host_id = $1 AND status <> 'deleted'")
        .bind(host.id)
        .fetch_all(&s.db)
        .await?;
    let listening = Node::listening_ports(exec).await.map_err(host_error)?;
    let free = |p: u16| !ours.contains(&i32::from(p)) && !listening.contains(&p);
    match wanted {
        Some(p) if ours.contains(&i32::from(p)) => {
            Err(ApiError::field("port", "port_taken", format!("port {p} belongs to another instance on {}", host.name)))
        }
        Some(p) if !free(p) => Err(ApiError::field(
            "port",
            "port_in_use",
            format!("something already listens on port {p} on {}", host.name),
        )),
        Some(p) => Ok(p),
        None => (host.port_range_start as u16..=host.port_range_end as u16).find(|p| free(*p)).ok_or_else(|| {
            ApiError::field("port", "no_free_port", format!("no free port left in {}'s range", host.name))
        }),
    }
}

/// Extensions must be installed for the version on the host.
async fn check_extensions(exec: &HostExec, bin: &str, extensions: &[String]) -> ApiResult<()> {
    if extensions.is_empty() {
        return Ok(());
    }
    let cmd = Command::new(&format!("{bin}/pg_config"), &["--sharedir"]).map_err(host_error)?;
    let share = exec.run(&cmd).await.map_err(host_error)?.stdout.trim().to_string();
    let mut errs = FieldErrors::default();
    for (i, e) in extensions.iter().enumerate() {
        let control = format!("{share}/extension/{e}.control");
        let found = exec.run(&Command::new("/usr/bin/test", &["-f", &control]).map_err(host_error)?).await;
        if found.is_err() {
            errs.add(
                &format!("allowed_extensions[{i}]"),
                "unavailable",
                format!("extension {e:?} is not installed on the host"),
            );
        }
    }
    errs.into_result()
}

/// Checks new settings of an existing managed instance (returns them for the operation).
pub async fn check_update(s: &AppState, row: &InstanceRow, new: &Settings) -> ApiResult<Settings> {
    if row.status() != InstanceStatus::Ready {
        return Err(ApiError::Conflict(
            "not_ready",
            format!("instance {} is {}; settings change on a ready instance", row.name, row.status().as_str()),
        ));
    }
    let host = HostRecord::load(&s.db, row.host_id.unwrap_or_default()).await?.ok_or(ApiError::NotFound("host"))?;
    let bin = host.bin_dir(row.pg_version.as_deref().unwrap_or_default()).ok_or(ApiError::NotFound("host version"))?;
    let exec = s.hosts.get(&host, &s.key).await.map_err(host_error)?;
    check_settings(&exec, &host, &bin, new).await?;
    Ok(new.clone())
}

/// Marks the instance deleting and enqueues its removal.
pub async fn delete(s: &AppState, row: &InstanceRow) -> ApiResult<Instance> {
    let mut tx = s.db.begin().await?;
    sqlx::query("UPDATE instances SET status = 'deleting', version = version + 1 WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    crate::enqueue(&mut tx, row.id, &jobs::DeleteInstance::default()).await?;
    tx.commit().await?;
    Ok(dbaas_domain::catalog::record::load_instance(&s.db, row.id)
        .await?
        .ok_or(ApiError::NotFound("instance"))?
        .to_model())
}

/// Start, stop or restart, when the instance's status allows it: enqueued, not run here.
pub async fn action(s: &AppState, name: &str, action: InstanceActionKind) -> ApiResult<Instance> {
    let row = by_name(&s.db, name).await?.ok_or(ApiError::NotFound("instance"))?;
    if !row.is_managed() {
        return Err(ApiError::field(
            "action",
            "managed_only",
            "start, stop, restart and renew_certificate apply to managed instances",
        ));
    }
    let status = row.status();
    type AnyJob = Box<dyn Payload<OperationKind> + Send + Sync>;
    let (job, allowed): (AnyJob, bool) = match action {
        InstanceActionKind::Start => (
            Box::new(jobs::StartInstance::default()),
            matches!(status, InstanceStatus::Ready | InstanceStatus::Stopped),
        ),
        InstanceActionKind::Stop => {
            (Box::new(jobs::StopInstance::default()), matches!(status, InstanceStatus::Ready | InstanceStatus::Stopped))
        }
        InstanceActionKind::Restart => (Box::new(jobs::RestartInstance::default()), status == InstanceStatus::Ready),
        InstanceActionKind::RenewCertificate => {
            let job = jobs::RenewCertificate { reason: Some("requested".into()) };
            (Box::new(job), status == InstanceStatus::Ready)
        }
    };
    if !allowed {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!(
                "instance {name} is {}; cannot {} now",
                status.as_str(),
                match action {
                    InstanceActionKind::Start => "start it",
                    InstanceActionKind::Stop => "stop it",
                    InstanceActionKind::Restart => "restart it",
                    InstanceActionKind::RenewCertificate => "renew its certificate",
                }
            ),
        ));
    }
    let mut tx = s.db.begin().await?;
    crate::enqueue(&mut tx, row.id, job.as_ref()).await?;
    tx.commit().await?;
    let row = by_name(&s.db, name).await?.ok_or(ApiError::NotFound("instance"))?;
    Ok(row.to_model())
}
