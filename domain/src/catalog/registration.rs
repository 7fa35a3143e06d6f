//! Registering an external instance: every field checked, then the server itself (reachable
//! with the given TLS mode, the login able to create databases and roles, the extensions
//! there), then the row. `check_common` also serves managed instances.

use dbaas_client::{CreateInstance, Instance, SslMode};
use uuid::Uuid;

use super::conn::{Target, MAINTENANCE_DB};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::state::AppState;
use dbaas_store::instances::by_name;
use dbaas_store::naming::{validate_extension_name, validate_instance_name};

/// Checks shared by both kinds; returns the dedicated tenant's id.
pub async fn check_common(s: &AppState, req: &CreateInstance, errs: &mut FieldErrors) -> ApiResult<Option<Uuid>> {
    errs.check("name", "invalid_name", validate_instance_name(&req.name));
    if !(0..=10_000).contains(&req.max_databases) {
        errs.add("max_databases", "out_of_range", "must be between 0 and 10000");
    }
    for (i, e) in req.allowed_extensions.iter().enumerate() {
        errs.check(&format!("allowed_extensions[{i}]"), "invalid_extension", validate_extension_name(e));
    }
    for k in req.labels.keys() {
        if k.is_empty() || k.len() > 63 {
            errs.add("labels", "invalid_label", format!("label key {k:?} must be 1 to 63 characters"));
        }
    }
    if let Some(p) = &req.public_host {
        if !dbaas_store::naming::valid_host(p) {
            errs.add("public_host", "invalid_host", "must be a host name or IP address");
        }
    }
    let Some(tenant) = &req.dedicated_tenant else { return Ok(None) };
    let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1 AND deleted_at IS NULL")
        .bind(tenant)
        .fetch_optional(&s.db)
        .await?;
    if id.is_none() {
        errs.add("dedicated_tenant", "unknown_tenant", format!("no tenant named {tenant:?}"));
    }
    Ok(id)
}

/// What a connectivity and privilege check found.
pub struct Verified {
    pub server_version: String,
}

/// Validates, verifies against the server, and records an external instance.
pub async fn register(s: &AppState, req: CreateInstance) -> ApiResult<Instance> {
    let mut errs = FieldErrors::default();
    let dedicated = check_common(s, &req, &mut errs).await?;
    if !dbaas_store::naming::valid_host(&req.host) {
        errs.add("host", "invalid_host", "must be a host name or IP address");
    }
    let port = req.port.unwrap_or(5432);
    if port == 0 {
        errs.add("port", "out_of_range", "must be 1-65535");
    }
    let admin_user = req.admin_user.clone().unwrap_or_default();
    let admin_password = req.admin_password.clone().unwrap_or_default();
    if admin_user.is_empty() || admin_user.len() > 63 {
        errs.add("admin_user", "required", "an external instance needs an admin login of 1 to 63 bytes");
    }
    if admin_password.is_empty() {
        errs.add("admin_password", "required", "must not be empty");
    }
    // Given a CA, the default is to verify the server with it; `prefer` would accept any
    // certificate, or none.
    let sslmode = match (req.sslmode, &req.ca_cert) {
        (SslMode::Prefer, Some(_)) => SslMode::VerifyFull,
        (m, _) => m,
    };
    if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && req.ca_cert.is_none() {
        errs.add("ca_cert", "required", "verify-ca and verify-full need the instance's CA certificate");
    }
    if matches!(sslmode, SslMode::Disable | SslMode::Prefer) && !is_loopback(&req.host) {
        errs.add(
            "sslmode",
            "insecure",
            "disable and prefer would let the admin password cross the network without TLS; use require, \
             verify-ca or verify-full (verify-full with ca_cert is the default when a CA is given)",
        );
    }
    if req.version.is_some() {
        errs.add("version", "managed_only", "the version of an external instance is read from the server");
    }
    if !req.settings.is_empty() {
        errs.add("settings", "managed_only", "settings are applied to managed instances only");
    }
    errs.into_result()?;
    if by_name(&s.db, &req.name).await?.is_some() {
        return Err(ApiError::Conflict("already_exists", format!("instance {:?} already exists", req.name)));
    }
    let target = Target::new(&req.host, port, &admin_user, &admin_password, sslmode, req.ca_cert.as_deref());
    let verified = verify(&target, &req.allowed_extensions).await?;

    let id = Uuid::new_v4();
    let enc = s.key.encrypt(&admin_password, &format!("instance:{id}"));
    sqlx::query(
        "INSERT INTO instances (id, name, kind, host, port, public_host, admin_user, admin_password_enc, sslmode, ca_cert, \
         environment, labels, max_databases, allowed_extensions, server_version, dedicated_tenant_id, protected) \
         VALUES ($1, $2, 'external', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(id)
    .bind(&req.name)
    .bind(&req.host)
    .bind(i32::from(port))
    .bind(req.public_host.as_deref().unwrap_or(&req.host))
    .bind(&admin_user)
    .bind(enc)
    .bind(sslmode.as_str())
    .bind(&req.ca_cert)
    .bind(req.environment.as_str())
    .bind(sqlx::types::Json(&req.labels))
    .bind(req.max_databases)
    .bind(&req.allowed_extensions)
    .bind(&verified.server_version)
    .bind(dedicated)
    .bind(req.protected)
    .execute(&s.db)
    .await?;
    let row = by_name(&s.db, &req.name).await?.ok_or(ApiError::NotFound("instance"))?;
    Ok(row.to_model())
}

/// The instance is on this machine (traffic to it never crosses a network).
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.starts_with('/') || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Connects and checks the login may create databases and roles.
pub async fn verify(target: &Target, extensions: &[String]) -> ApiResult<Verified> {
    let mut conn = target.connect(MAINTENANCE_DB).await.map_err(|e| {
        ApiError::Unprocessable(
            "instance_unreachable",
            format!("cannot connect to the instance: {} ({})", e.message, e.code),
        )
    })?;
    let (superuser, createdb, createrole, version): (bool, bool, bool, String) = sqlx::query_as(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, pg_catalog.current_setting('server_version') \
         FROM pg_catalog.pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| {
        ApiError::Unprocessable("instance_check_failed", format!("reading the login's privileges failed: {e}"))
    })?;
    if !(superuser || (createdb && createrole)) {
        let mut missing = Vec::new();
        if !createdb {
            missing.push("CREATEDB");
        }
        if !createrole {
            missing.push("CREATEROLE");
        }
        return Err(ApiError::Unprocessable(
            "insufficient_privileges",
            format!("the admin login lacks {} (it needs SUPERUSER, or CREATEDB and CREATEROLE)", missing.join(" and ")),
        ));
    }
    if superuser {
        // An MD5-stored password means MD5 authentication (weak, replayable hashes); where we
        // can see it (a superuser login may read pg_authid), refuse it.
        let md5: bool = sqlx::query_scalar(
            "SELECT coalesce(rolpassword LIKE 'md5%', false) FROM pg_catalog.pg_authid WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await?;
        if md5 {
            return Err(ApiError::field(
                "admin_password",
                "md5_password",
                "the admin login's password is stored as MD5; set password_encryption = 'scram-sha-256', set the \
                 password again and use scram-sha-256 in pg_hba.conf",
            ));
        }
    }
    if !extensions.is_empty() {
        let available: Vec<String> = sqlx::query_scalar("SELECT name::text FROM pg_catalog.pg_available_extensions")
            .fetch_all(&mut conn)
            .await?;
        let mut errs = FieldErrors::default();
        for (i, e) in extensions.iter().enumerate() {
            if !available.contains(e) {
                errs.add(
                    &format!("allowed_extensions[{i}]"),
                    "unavailable",
                    format!("extension {e:?} is not installed on the server"),
                );
            }
        }
        errs.into_result()?;
    }
    Ok(Verified { server_version: version })
}
