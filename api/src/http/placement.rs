//! Where a new database goes: the named instance, or the least-loaded matching one.

use dbaas_client::CreateDatabase;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::catalog::conn::{InstanceRow, INSTANCE_COLUMNS};
use crate::error::{ApiError, ApiResult};

/// The named instance, or the least-loaded one matching the placement with free capacity.
/// Rows are locked so two requests cannot both take the last slot.
/// An instance dedicated to a tenant takes only that tenant's databases, and is preferred
/// for them; only `ready` instances take new databases.
pub async fn choose_instance(
    tx: &mut Transaction<'_, Postgres>,
    req: &CreateDatabase,
    tenant_id: Uuid,
) -> ApiResult<InstanceRow> {
    if let Some(name) = &req.instance {
        // An instance dedicated to another tenant is, to this one, no instance at all: the
        // same answer as an unknown name, so its existence is not confirmed.
        let inst: Option<InstanceRow> = sqlx::query_as(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.name = $1 AND i.status <> 'deleted' \
             AND (i.dedicated_tenant_id IS NULL OR i.dedicated_tenant_id = $2) FOR UPDATE"
        ))
        .bind(name)
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
        let mut inst =
            inst.ok_or_else(|| ApiError::field("instance", "unknown_instance", format!("no instance named {name:?}")))?;
        recount(tx, std::slice::from_mut(&mut inst)).await?;
        if inst.status() != dbaas_client::InstanceStatus::Ready {
            return Err(ApiError::Conflict(
                "instance_not_ready",
                format!("instance {name} is {}; databases are created on ready instances", inst.status().as_str()),
            ));
        }
        if inst.database_count >= i64::from(inst.max_databases) {
            return Err(ApiError::Conflict(
                "instance_full",
                format!("instance {name} is at capacity ({} of {} databases)", inst.database_count, inst.max_databases),
            ));
        }
        return Ok(inst);
    }
    let p = req.placement.clone().unwrap_or_default();
    let env = p.environment.map(|e| e.as_str()).unwrap_or("sandbox");
    let candidates: Vec<InstanceRow> = sqlx::query_as(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.environment = $1 AND i.labels @> $2 AND i.status = 'ready' \
         AND (i.dedicated_tenant_id IS NULL OR i.dedicated_tenant_id = $3) ORDER BY i.name FOR UPDATE"
    ))
    .bind(env)
    .bind(sqlx::types::Json(&p.labels))
    .bind(tenant_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut candidates = candidates;
    recount(tx, &mut candidates).await?;
    if candidates.is_empty() {
        return Err(ApiError::Unprocessable(
            "no_matching_instance",
            format!("no instance in environment {env} has labels {:?}", p.labels),
        ));
    }
    candidates
        .into_iter()
        .filter(|i| i.database_count < i64::from(i.max_databases))
        .min_by(|a, b| {
            let la = a.database_count as f64 / f64::from(a.max_databases.max(1));
            let lb = b.database_count as f64 / f64::from(b.max_databases.max(1));
            // The tenant's own instances first, then the least loaded.
            b.dedicated_tenant_id.is_some().cmp(&a.dedicated_tenant_id.is_some()).then(la.total_cmp(&lb))
        })
        .ok_or_else(|| ApiError::Conflict("no_capacity", format!("every matching instance in {env} is at capacity")))
}

/// Counts the instances' databases again now that their rows are locked: the count in the
/// locking statement comes from its snapshot, taken before the lock was granted, so two
/// requests racing for the last slot would both see it free.
async fn recount(tx: &mut Transaction<'_, Postgres>, instances: &mut [InstanceRow]) -> ApiResult<()> {
    let ids: Vec<Uuid> = instances.iter().map(|i| i.id).collect();
    let counts: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT i.id, (SELECT count(*) FROM databases d WHERE d.instance_id = i.id AND d.status <> 'deleted') \
         FROM instances i WHERE i.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    for inst in instances.iter_mut() {
        if let Some((_, n)) = counts.iter().find(|(id, _)| *id == inst.id) {
            inst.database_count = *n;
        }
    }
    Ok(())
}
