//! The rules database changes follow, shared by the handlers of `databases.rs`: re-adoption
//! of a retained database, the name check on the instance, allowed extensions, lowering
//! deletion protection, and a status change with the operation that ends it.

use axum::http::StatusCode;
use dbaas_client::{CreateDatabase, DatabaseStatus, Environment};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::databases::{accepted, Accepted};
use crate::auth::Principal;
use crate::catalog::conn::{InstanceRow, INSTANCE_COLUMNS};
use crate::catalog::jobs;
use crate::catalog::ownership::{self, Claim};
use crate::catalog::record::{self, DatabaseRow};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::operation as queue;
use crate::ops::job::Job;
use crate::state::AppState;

/// Declaring a retained (or failed) database again takes it back under management with its
/// data; the provisioning steps are idempotent, so they only fill in what is missing.
pub(super) async fn readopt(
    s: &AppState,
    mut tx: Transaction<'_, Postgres>,
    req: &CreateDatabase,
    old: DatabaseRow,
) -> ApiResult<Accepted> {
    let status = old.status();
    if !matches!(status, DatabaseStatus::Retained | DatabaseStatus::Failed) {
        return Err(ApiError::Conflict(
            "already_exists",
            format!("database {}/{} already exists (status {})", old.tenant_name, old.name, status.as_str()),
        ));
    }
    if req.instance.as_ref().is_some_and(|i| *i != old.instance_name) {
        return Err(ApiError::Conflict(
            "instance_mismatch",
            format!(
                "{}/{} is {} on instance {}; it can only be re-adopted there",
                old.tenant_name,
                old.name,
                status.as_str(),
                old.instance_name
            ),
        ));
    }
    let inst: InstanceRow = sqlx::query_as(&format!("SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.id = $1"))
        .bind(old.instance_id)
        .fetch_one(&mut *tx)
        .await?;
    check_extensions(&inst, &req.extensions)?;
    // Re-adoption takes back only what carries this record's markers.
    let creds = record::credentials(&mut *tx, old.id).await?;
    let claim = crate::catalog::provision::claim(&old, &creds).map_err(|e| anyhow::anyhow!(e))?;
    refuse_foreign(&inst, s, &claim).await?;
    let mode = req.mode.unwrap_or(old.mode());
    sqlx::query(
        "UPDATE databases SET status = 'provisioning', mode = $2, extensions = $3, connection_limit = $4, \
         version = version + 1, updated_at = now() WHERE id = $1",
    )
    .bind(old.id)
    .bind(mode.as_str())
    .bind(&req.extensions)
    .bind(req.connection_limit.unwrap_or(old.connection_limit))
    .execute(&mut *tx)
    .await?;
    let drop_extensions: Vec<String> = old.extensions.iter().filter(|e| !req.extensions.contains(e)).cloned().collect();
    let job = jobs::ProvisionDatabase { readopt: true, reconcile: false, drop_extensions, restore_from: None };
    let op = enqueue_for(&mut tx, old.id, old.tenant_id, job.into()).await?;
    tx.commit().await?;
    accepted(s, old.id, Some(op), StatusCode::ACCEPTED).await
}

pub(super) async fn enqueue_for(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    tenant: Uuid,
    job: Job,
) -> ApiResult<queue::OperationRow> {
    let op = queue::enqueue(tx, &job, "database", id, Some(tenant)).await?;
    sqlx::query("UPDATE databases SET last_operation_id = $2 WHERE id = $1")
        .bind(id)
        .bind(op.id)
        .execute(&mut **tx)
        .await?;
    Ok(op)
}

/// Moves a database to an in-progress status and enqueues the operation that ends it.
pub(super) async fn transition(
    tx: &mut Transaction<'_, Postgres>,
    cur: &DatabaseRow,
    status: DatabaseStatus,
    job: Job,
) -> ApiResult<queue::OperationRow> {
    sqlx::query("UPDATE databases SET status = $2, version = version + 1, updated_at = now() WHERE id = $1")
        .bind(cur.id)
        .bind(status.as_str())
        .execute(&mut **tx)
        .await?;
    enqueue_for(tx, cur.id, cur.tenant_id, job).await
}

/// 409 `name_conflict` when the instance holds any of the claimed names without our marker.
pub(super) async fn refuse_foreign(inst: &InstanceRow, s: &AppState, claim: &Claim<'_>) -> ApiResult<()> {
    match ownership::preflight(inst, &s.key, claim).await {
        Ok(Some(found)) if !found.is_empty() => Err(ApiError::Conflict(
            "name_conflict",
            format!(
                "instance {} already has {} that the service did not create; nothing was changed (choose another \
                 database name, or remove the object by hand)",
                inst.name,
                found.join(", ")
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(instance = %inst.name, error = %e, "name check before create skipped");
            Ok(())
        }
    }
}

pub(super) fn check_extensions(inst: &InstanceRow, wanted: &[String]) -> ApiResult<()> {
    let mut errs = FieldErrors::default();
    for (i, e) in wanted.iter().enumerate() {
        if !inst.allowed_extensions.contains(e) {
            let allowed = if inst.allowed_extensions.is_empty() {
                "none".to_string()
            } else {
                inst.allowed_extensions.join(", ")
            };
            errs.add(
                &format!("extensions[{i}]"),
                "extension_not_allowed",
                format!("extension {e:?} is not allowed on instance {} (allowed: {allowed})", inst.name),
            );
        }
    }
    errs.into_result()
}

/// Deletion protection is lowered only by a platform admin in `prod`; elsewhere a tenant may,
/// and the change is written to the audit log with who did it (in the same transaction).
pub(super) async fn lower_protection(
    tx: &mut Transaction<'_, Postgres>,
    who: &Principal,
    cur: &DatabaseRow,
) -> ApiResult<()> {
    if cur.environment == Environment::Prod && !who.is_admin() {
        return Err(ApiError::Forbidden(
            "in prod, only a platform admin can lower a database's mode from protected to standard".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO audit_log (actor, tenant, action, target, status_code) VALUES ($1, $2, 'database.mode.lowered', $3, 200)",
    )
    .bind(who.actor())
    .bind(&cur.tenant_name)
    .bind(format!("/v1/databases/{} (protected -> standard)", cur.id))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
