//! Databases: create (or re-adopt), read with drift, update, safe delete.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use dbaas_client::{
    Access, CreateDatabase, DatabaseAccepted, DatabaseMode, DatabaseStatus, Environment, UpdateDatabase,
};
use serde::Deserialize;

use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{if_match, parse_duration, ApiJson, ApiQuery};
use super::tenants::{stale, visible_tenant};
use crate::auth::Principal;
use crate::crypto::generate_password;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::naming::Marker;
use crate::naming::{validate_database_name, validate_extension_name, PhysicalNames};
use crate::operation as queue;
use crate::operation::OperationModel;
use crate::state::AppState;

use crate::catalog::jobs;
use crate::catalog::ownership::Claim;
use crate::catalog::record::{self, DatabaseRow, DATABASE_COLUMNS, DATABASE_FROM};

use super::database_rules::{check_extensions, enqueue_for, lower_protection, readopt, refuse_foreign, transition};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(super::database_list::list_databases, create_database))
        .routes(routes!(get_database, update_database, delete_database))
        .routes(routes!(find_database))
        .routes(routes!(reconcile_database))
}

pub(super) type Accepted = (StatusCode, HeaderMap, axum::Json<DatabaseAccepted>);

/// A database the caller may see (others' are 404).
pub async fn visible(s: &AppState, who: &Principal, id: Uuid) -> ApiResult<DatabaseRow> {
    match record::load(&s.db, id).await? {
        Some(d) if d.status() != DatabaseStatus::Deleted || who.is_admin() => {
            if who.tenant_filter().is_some_and(|t| t != d.tenant_id) {
                Err(ApiError::NotFound("database"))
            } else {
                Ok(d)
            }
        }
        _ => Err(ApiError::NotFound("database")),
    }
}

fn etag(version: i64) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = format!("\"{version}\"").parse() {
        h.insert(axum::http::header::ETAG, v);
    }
    h
}

pub(super) async fn accepted(
    s: &AppState,
    id: Uuid,
    op: Option<queue::OperationRow>,
    status: StatusCode,
) -> ApiResult<Accepted> {
    let db = record::load(&s.db, id).await?.ok_or(ApiError::NotFound("database"))?;
    Ok((
        status,
        etag(db.version),
        axum::Json(DatabaseAccepted { database: db.to_model(), operation: op.map(|o| o.to_model()) }),
    ))
}

#[utoipa::path(post, path = "/v1/databases", tag = "databases", request_body = CreateDatabase,
    responses((status = 202, body = DatabaseAccepted, description = "Accepted: the operation provisions it"),
        (status = 404, body = dbaas_client::Problem), (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
pub(super) async fn create_database(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<CreateDatabase>,
) -> ApiResult<Accepted> {
    // Which tenant.
    let tenant_name = match (&req.tenant, &who.tenant) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) => t.name.clone(),
        (None, None) => return Err(ApiError::field("tenant", "required", "admin tokens must name the tenant")),
    };
    let mut errs = FieldErrors::default();
    errs.check("name", "invalid_name", validate_database_name(&tenant_name, &req.name));
    match (&req.instance, &req.placement) {
        (Some(_), Some(_)) => errs.add("placement", "conflict", "give either instance or placement, not both"),
        (None, None) => errs.add("instance", "required", "give an instance name or a placement {environment, labels}"),
        (None, Some(p)) if p.environment.is_none() => errs.add(
            "placement.environment",
            "required",
            "placement needs an environment (placement never crosses environments)",
        ),
        _ => {}
    }
    for (i, e) in req.extensions.iter().enumerate() {
        errs.check(&format!("extensions[{i}]"), "invalid_extension", validate_extension_name(e));
    }
    if req.connection_limit.is_some_and(|c| !(-1..=10_000).contains(&c)) {
        errs.add("connection_limit", "out_of_range", "must be -1 (no limit) or 0-10000");
    }
    errs.into_result()?;
    let (tenant_id, tenant_name) = visible_tenant(&s.db, &who, &tenant_name).await?;

    let mut tx = s.db.begin().await?;
    // Serialises creations per tenant (quota) and makes the name check race-free.
    let max: i32 =
        sqlx::query_scalar("SELECT max_databases FROM tenants WHERE id = $1 AND deleted_at IS NULL FOR UPDATE")
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApiError::NotFound("tenant"))?;
    let existing: Option<DatabaseRow> = sqlx::query_as(&format!(
        "SELECT {DATABASE_COLUMNS} FROM {DATABASE_FROM} WHERE d.tenant_id = $1 AND d.name = $2 AND d.status <> 'deleted'"
    ))
    .bind(tenant_id)
    .bind(&req.name)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(old) = existing {
        if req.restore_from.is_some() {
            return Err(ApiError::Conflict(
                "already_exists",
                format!("tenant {tenant_name} already has a database {:?}; restore into a new name", req.name),
            ));
        }
        return readopt(&s, tx, &req, old).await;
    }
    if let Some(backup) = req.restore_from {
        // Only a succeeded backup of this tenant's (the same answer whether another tenant's
        // exists or not).
        match crate::store::backups::backup(&mut *tx, backup).await? {
            Some(b) if b.tenant_id == tenant_id && b.status == dbaas_client::BackupStatus::Succeeded => {}
            // A point-in-time restore's backup is made by the restore itself.
            Some(b)
                if b.tenant_id == tenant_id
                    && b.reason == dbaas_client::BackupReason::PointInTime
                    && b.status == dbaas_client::BackupStatus::Running => {}
            Some(b) if b.tenant_id == tenant_id => {
                return Err(ApiError::field(
                    "restore_from",
                    "not_restorable",
                    format!("backup {backup} is {:?}; only a succeeded backup restores", b.status).to_lowercase(),
                ))
            }
            _ => return Err(ApiError::field("restore_from", "unknown_backup", format!("no backup {backup}"))),
        }
    }
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM databases WHERE tenant_id = $1 AND status <> 'deleted'")
        .bind(tenant_id)
        .fetch_one(&mut *tx)
        .await?;
    if live >= i64::from(max) {
        return Err(ApiError::Conflict(
            "quota_exceeded",
            format!("tenant {tenant_name} already has {live} of {max} databases"),
        ));
    }
    let inst = super::placement::choose_instance(&mut tx, &req, tenant_id).await?;
    check_extensions(&inst, &req.extensions)?;
    let env = inst.environment();
    let mode =
        req.mode.unwrap_or(if env == Environment::Prod { DatabaseMode::Protected } else { DatabaseMode::Standard });
    let (retention, backup_store) =
        backup_settings(&mut tx, env, req.backup_retention_days, req.backup_store.as_deref()).await?;

    let id = Uuid::new_v4();
    let names = PhysicalNames::new(&tenant_name, &req.name);
    let cred_ids: Vec<(Access, Uuid)> = Access::ALL.iter().map(|a| (*a, Uuid::new_v4())).collect();
    // Names held by anything on the instance are refused before any record exists; the
    // provisioning repeats the check under its lock (the instance may be unreachable now).
    let claim = Claim {
        database: (&names.database, Marker::Database(id)),
        roles: [Access::Admin, Access::Write, Access::Read]
            .iter()
            .filter_map(|a| cred_ids.iter().find(|(x, _)| x == a).map(|(_, c)| (names.role(*a), Marker::Role(*c))))
            .collect(),
    };
    refuse_foreign(&inst, &s, &claim).await?;
    sqlx::query(
        "INSERT INTO databases (id, tenant_id, name, physical_name, instance_id, mode, status, extensions, connection_limit, \
         backup_retention_days, backup_store_id, pool_mode) VALUES ($1, $2, $3, $4, $5, $6, 'provisioning', $7, $8, $9, $10, $11)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(&req.name)
    .bind(&names.database)
    .bind(inst.id)
    .bind(mode.as_str())
    .bind(&req.extensions)
    .bind(req.connection_limit.unwrap_or(-1))
    .bind(retention)
    .bind(backup_store)
    .bind(req.pool_mode.unwrap_or_default().as_str())
    .execute(&mut *tx)
    .await?;
    for (access, cid) in cred_ids {
        sqlx::query(
            "INSERT INTO credentials (id, database_id, kind, access, role_name, password_enc, status) \
             VALUES ($1, $2, 'static', $3, $4, $5, 'pending')",
        )
        .bind(cid)
        .bind(id)
        .bind(access.as_str())
        .bind(names.role(access))
        .bind(s.key.encrypt(&generate_password(), &format!("credential:{cid}")))
        .execute(&mut *tx)
        .await?;
    }
    let job = jobs::ProvisionDatabase { restore_from: req.restore_from, ..Default::default() };
    let op = enqueue_for(&mut tx, id, tenant_id, job.into()).await?;
    tx.commit().await?;
    accepted(&s, id, Some(op), StatusCode::ACCEPTED).await
}

/// A database's own backup settings, checked against its environment's policy and stores.
async fn backup_settings(
    tx: &mut sqlx::PgConnection,
    env: Environment,
    retention_days: Option<u32>,
    store: Option<&str>,
) -> ApiResult<(Option<i32>, Option<Uuid>)> {
    if let Some(days) = retention_days {
        crate::backup::policy::policy(&mut *tx, env).await?.check_retention(days)?;
    }
    let store = match store {
        Some(name) => {
            Some(crate::backup::policy::choose_store_for("backup_store", tx, env, Some(name), None).await?.id)
        }
        None => None,
    };
    Ok((retention_days.map(|d| d as i32), store))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GetQuery {
    /// Include the drift (default true): the background reconciler's last comparison with
    /// the instance's catalog, `drift.checked_at` saying when.
    drift: Option<bool>,
    /// Compare with the instance's catalog now instead (rate-limited per tenant: 429 with
    /// Retry-After past 30 a minute).
    fresh: Option<bool>,
}

#[utoipa::path(get, path = "/v1/databases/{id}", tag = "databases", params(("id" = Uuid, Path), GetQuery),
    responses((status = 200, body = dbaas_client::Database), (status = 404, body = dbaas_client::Problem),
        (status = 429, body = dbaas_client::Problem, description = "Too many live drift checks (`fresh=true`)")))]
async fn get_database(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> ApiResult<(HeaderMap, axum::Json<dbaas_client::Database>)> {
    let row = visible(&s, &who, id).await?;
    with_drift(&s, row, &q).await
}

async fn with_drift(
    s: &AppState,
    row: DatabaseRow,
    q: &GetQuery,
) -> ApiResult<(HeaderMap, axum::Json<dbaas_client::Database>)> {
    use crate::catalog::reconcile;
    let mut model = row.to_model();
    let comparable = matches!(row.status(), DatabaseStatus::Ready | DatabaseStatus::Retained | DatabaseStatus::Failed);
    if q.drift.unwrap_or(true) && comparable {
        if q.fresh.unwrap_or(false) {
            if !reconcile::take_fresh_allowance(s, row.tenant_id).await? {
                return Err(ApiError::RateLimited(
                    format!(
                        "at most {} live drift checks a minute per tenant; the stored drift (without fresh) is \
                         at most one reconciler interval old",
                        reconcile::FRESH_PER_MINUTE
                    ),
                    60,
                ));
            }
            if let Some(inst) = record::load_instance(&s.db, row.instance_id).await? {
                let drift = crate::catalog::drift::check(&s.db, &row, &inst, &s.key).await;
                reconcile::record_live(s, row.id, &drift).await?;
                model.drift = Some(drift);
            }
        } else {
            model.drift = reconcile::cached(s, row.id).await?;
        }
    }
    Ok((etag(row.version), axum::Json(model)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/databases/{name}", tag = "databases",
    params(("tenant" = String, Path), ("name" = String, Path), GetQuery),
    responses((status = 200, body = dbaas_client::Database), (status = 404, body = dbaas_client::Problem),
        (status = 429, body = dbaas_client::Problem, description = "Too many live drift checks (`fresh=true`)")))]
async fn find_database(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> ApiResult<(HeaderMap, axum::Json<dbaas_client::Database>)> {
    let (tenant_id, _) = visible_tenant(&s.db, &who, &tenant).await?;
    let row: DatabaseRow = sqlx::query_as(&format!(
        "SELECT {DATABASE_COLUMNS} FROM {DATABASE_FROM} WHERE d.tenant_id = $1 AND d.name = $2 AND d.status <> 'deleted'"
    ))
    .bind(tenant_id)
    .bind(&name)
    .fetch_optional(&s.db)
    .await?
    .ok_or(ApiError::NotFound("database"))?;
    with_drift(&s, row, &q).await
}

#[utoipa::path(patch, path = "/v1/databases/{id}", tag = "databases", params(("id" = Uuid, Path)), request_body = UpdateDatabase,
    responses((status = 202, body = DatabaseAccepted), (status = 200, body = DatabaseAccepted, description = "Only the record changed"),
        (status = 409, body = dbaas_client::Problem), (status = 412, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn update_database(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdateDatabase>,
) -> ApiResult<Accepted> {
    let header_version = if_match(&headers)?;
    let mut errs = FieldErrors::default();
    for (i, e) in req.extensions.iter().flatten().enumerate() {
        errs.check(&format!("extensions[{i}]"), "invalid_extension", validate_extension_name(e));
    }
    if req.connection_limit.is_some_and(|c| !(-1..=10_000).contains(&c)) {
        errs.add("connection_limit", "out_of_range", "must be -1 (no limit) or 0-10000");
    }
    errs.into_result()?;
    let row = visible(&s, &who, id).await?;
    let mut tx = s.db.begin().await?;
    let cur = record::lock(&mut tx, row.id).await?;
    if let Some(v) = header_version.or(req.version) {
        if v != cur.version {
            return Err(stale(header_version.is_some()));
        }
    }
    match cur.status() {
        DatabaseStatus::Deleting | DatabaseStatus::Deleted | DatabaseStatus::Retained => {
            return Err(ApiError::Conflict(
                "invalid_state",
                format!("database is {}; it cannot be changed", cur.status().as_str()),
            ))
        }
        _ => {}
    }
    if let Some(ext) = &req.extensions {
        let inst = record::load_instance(&mut *tx, cur.instance_id).await?.ok_or(ApiError::NotFound("instance"))?;
        check_extensions(&inst, ext)?;
    }
    let extensions = req.extensions.clone().unwrap_or_else(|| cur.extensions.clone());
    let limit = req.connection_limit.unwrap_or(cur.connection_limit);
    let mode = req.mode.unwrap_or(cur.mode());
    if cur.mode() == DatabaseMode::Protected && mode == DatabaseMode::Standard {
        lower_protection(&mut tx, &who, &cur).await?;
    }
    let pool_mode = req.pool_mode.unwrap_or(cur.pool_mode);
    // A new pool mode is the proxy's: the re-apply ends by syncing it.
    let target_changes = extensions != cur.extensions || limit != cur.connection_limit || pool_mode != cur.pool_mode;
    let env =
        record::load_instance(&mut *tx, cur.instance_id).await?.ok_or(ApiError::NotFound("instance"))?.environment();
    let (retention, backup_store) =
        backup_settings(&mut tx, env, req.backup_retention_days, req.backup_store.as_deref()).await?;
    sqlx::query(
        "UPDATE databases SET mode = $2, extensions = $3, connection_limit = $4, version = version + 1, updated_at = now(), \
         status = CASE WHEN $5 THEN 'updating' ELSE status END, \
         backup_retention_days = coalesce($6, backup_retention_days), backup_store_id = coalesce($7, backup_store_id), \
         pool_mode = $8 WHERE id = $1",
    )
    .bind(cur.id)
    .bind(mode.as_str())
    .bind(&extensions)
    .bind(limit)
    .bind(target_changes)
    .bind(retention)
    .bind(backup_store)
    .bind(pool_mode.as_str())
    .execute(&mut *tx)
    .await?;
    let op = if target_changes {
        let drop_extensions: Vec<String> = cur.extensions.iter().filter(|e| !extensions.contains(e)).cloned().collect();
        Some(enqueue_for(&mut tx, cur.id, cur.tenant_id, jobs::UpdateDatabase { drop_extensions }.into()).await?)
    } else {
        None
    };
    tx.commit().await?;
    let status = if op.is_some() { StatusCode::ACCEPTED } else { StatusCode::OK };
    accepted(&s, cur.id, op, status).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// Drop even a protected database (platform admin only).
    #[serde(default)]
    force: bool,
    /// How long open sessions may stay before they are terminated, e.g. `30s`.
    grace: Option<String>,
    /// Take a backup before dropping (default: the environment's policy, on in `prod`). It
    /// outlives the database; the drop waits for it and does not happen if it fails.
    final_backup: Option<bool>,
}

#[utoipa::path(delete, path = "/v1/databases/{id}", tag = "databases", params(("id" = Uuid, Path), DeleteQuery),
    responses((status = 202, body = DatabaseAccepted, description = "Deleting"),
        (status = 200, body = DatabaseAccepted, description = "Protected: now retained"),
        (status = 403, body = dbaas_client::Problem), (status = 404, body = dbaas_client::Problem)))]
async fn delete_database(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<Accepted> {
    if q.force {
        who.require_admin()?;
    }
    let grace_ms = match &q.grace {
        Some(g) => {
            let d = parse_duration(g).map_err(|m| ApiError::field("grace", "invalid_duration", m))?;
            if d.as_secs() > 3600 {
                return Err(ApiError::field("grace", "out_of_range", "at most 1h"));
            }
            Some(d.as_millis() as u64)
        }
        None => None,
    };
    let row = visible(&s, &who, id).await?;
    let mut tx = s.db.begin().await?;
    let cur = record::lock(&mut tx, row.id).await?;
    match cur.status() {
        DatabaseStatus::Deleted => return Err(ApiError::NotFound("database")),
        DatabaseStatus::Deleting => {
            // Already on its way: answer with the running operation (DELETE is idempotent).
            let op = match cur.last_operation_id {
                Some(op) => queue::fetch(&mut *tx, op).await?,
                None => None,
            };
            tx.commit().await?;
            return accepted(&s, cur.id, op, StatusCode::ACCEPTED).await;
        }
        DatabaseStatus::Retained if !q.force => {
            tx.commit().await?;
            return accepted(&s, cur.id, None, StatusCode::OK).await;
        }
        _ => {}
    }
    if cur.mode() == DatabaseMode::Protected && !q.force {
        sqlx::query(
            "UPDATE databases SET status = 'retained', version = version + 1, updated_at = now() WHERE id = $1",
        )
        .bind(cur.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return accepted(&s, cur.id, None, StatusCode::OK).await;
    }
    let final_backup = final_backup(&mut tx, &s, &cur, q.final_backup).await?;
    let job = jobs::DeleteDatabase { grace_ms, force: q.force, final_backup };
    let op = transition(&mut tx, &cur, DatabaseStatus::Deleting, job.into()).await?;
    tx.commit().await?;
    accepted(&s, cur.id, Some(op), StatusCode::ACCEPTED).await
}

/// Records the final backup a delete takes first, when asked or when the environment's policy
/// says so. Only a ready database is backed up (a failed one may not be complete); asked for
/// explicitly of one that is not ready, the delete is refused.
async fn final_backup(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    s: &AppState,
    cur: &DatabaseRow,
    asked: Option<bool>,
) -> ApiResult<Option<Uuid>> {
    let env =
        record::load_instance(&mut **tx, cur.instance_id).await?.ok_or(ApiError::NotFound("instance"))?.environment();
    let wanted = match asked {
        Some(w) => w,
        None => crate::backup::policy::policy(&mut *tx, env).await?.final_backup_on_delete,
    };
    if !wanted {
        return Ok(None);
    }
    if cur.status() != DatabaseStatus::Ready {
        if asked == Some(true) {
            return Err(ApiError::Conflict(
                "invalid_state",
                format!("database is {}; a final backup is taken of ready databases", cur.status().as_str()),
            ));
        }
        return Ok(None);
    }
    let store = crate::backup::policy::choose_store_for("final_backup", tx, env, None, cur.backup_store_id).await?;
    let id =
        crate::backup::policy::record(tx, &s.key, cur, env, &store, dbaas_client::BackupReason::Final, None).await?;
    Ok(Some(id))
}

#[utoipa::path(post, path = "/v1/databases/{id}/reconcile", tag = "databases", params(("id" = Uuid, Path)),
    responses((status = 202, body = DatabaseAccepted, description = "Provisioning runs again and restores what is missing"),
        (status = 409, body = dbaas_client::Problem)))]
/// Re-applies the database's provisioning (idempotent): restores a database or roles dropped
/// by hand, re-grants privileges, re-applies passwords; data in place is untouched.
async fn reconcile_database(State(s): State<AppState>, who: Principal, Path(id): Path<Uuid>) -> ApiResult<Accepted> {
    let row = visible(&s, &who, id).await?;
    let mut tx = s.db.begin().await?;
    let cur = record::lock(&mut tx, row.id).await?;
    if !matches!(cur.status(), DatabaseStatus::Ready | DatabaseStatus::Failed) {
        return Err(ApiError::Conflict(
            "invalid_state",
            format!("database is {}; only ready or failed databases are reconciled", cur.status().as_str()),
        ));
    }
    let op = transition(
        &mut tx,
        &cur,
        DatabaseStatus::Provisioning,
        jobs::ProvisionDatabase { reconcile: true, ..Default::default() }.into(),
    )
    .await?;
    tx.commit().await?;
    accepted(&s, cur.id, Some(op), StatusCode::ACCEPTED).await
}
