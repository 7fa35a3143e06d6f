//! What the scrape endpoints answer, rendered from the last collections in the state database
//! (never from a connection to an instance): an instance's series for the platform, a
//! tenant's databases' series for that tenant, and the service's own gauges.
//!
//! Labels added here: `tenant` and `database` (the logical names) on every per-database
//! series; on the tenant-scoped endpoint also `environment` and `instance` (its scrape config
//! sets `honor_labels: true` so `instance` is kept). On the per-instance endpoint, `instance`
//! and `environment` come from the discovery's target labels.

use std::collections::HashMap;

use chrono::Utc;
use uuid::Uuid;

use super::exposition::{render, Sample};

/// A managed database as the labels name it.
#[derive(sqlx::FromRow)]
struct Named {
    instance_id: Uuid,
    instance: String,
    environment: String,
    physical_name: String,
    tenant: String,
    name: String,
    database_id: Uuid,
}

/// Live databases, filtered by instance, tenant and/or id.
async fn named(
    db: &sqlx::PgPool,
    instance: Option<Uuid>,
    tenant: Option<Uuid>,
    database: Option<Uuid>,
) -> Result<Vec<Named>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.instance_id, i.name AS instance, i.environment, d.physical_name, t.name AS tenant, \
         d.name, d.id AS database_id FROM databases d JOIN instances i ON i.id = d.instance_id \
         JOIN tenants t ON t.id = d.tenant_id \
         WHERE d.status <> 'deleted' AND ($1::uuid IS NULL OR d.instance_id = $1) \
           AND ($2::uuid IS NULL OR d.tenant_id = $2) AND ($3::uuid IS NULL OR d.id = $3)",
    )
    .bind(instance)
    .bind(tenant)
    .bind(database)
    .fetch_all(db)
    .await
}

async fn instance_samples(db: &sqlx::PgPool, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<Sample>>, sqlx::Error> {
    let rows: Vec<(Uuid, sqlx::types::Json<Vec<Sample>>)> =
        sqlx::query_as("SELECT instance_id, samples FROM instance_metrics WHERE instance_id = ANY($1)")
            .bind(ids)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(id, s)| (id, s.0)).collect())
}

async fn database_samples(db: &sqlx::PgPool, ids: &[Uuid]) -> Result<Vec<Sample>, sqlx::Error> {
    let rows: Vec<sqlx::types::Json<Vec<Sample>>> =
        sqlx::query_scalar("SELECT samples FROM database_metrics WHERE database_id = ANY($1)")
            .bind(ids)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().flat_map(|s| s.0).collect())
}

/// Backups and drills of the databases, as per-database series.
async fn backup_samples(db: &sqlx::PgPool, dbs: &[&Named]) -> Result<Vec<Sample>, sqlx::Error> {
    let ids: Vec<Uuid> = dbs.iter().map(|d| d.database_id).collect();
    /// Database, last good backup, last passed drill, last drill's result, backup cron.
    type Row = (Uuid, Option<f64>, Option<f64>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT d.id, \
           (SELECT extract(epoch FROM max(b.finished_at))::float8 FROM backups b \
             WHERE b.database_id = d.id AND b.status = 'succeeded'), \
           (SELECT extract(epoch FROM max(b.verified_at))::float8 FROM backups b \
             WHERE b.database_id = d.id AND b.verify_status = 'passed'), \
           (SELECT b.verify_status FROM backups b WHERE b.database_id = d.id AND b.verified_at IS NOT NULL \
             ORDER BY b.verified_at DESC LIMIT 1), \
           (SELECT s.cron FROM schedules s WHERE s.database_id = d.id AND s.kind = 'backup' AND s.enabled \
             ORDER BY s.created_at LIMIT 1) \
         FROM databases d WHERE d.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?;
    let mut out = Vec::new();
    let now = Utc::now();
    for (id, last, verified, verify, cron) in rows {
        let Some(d) = dbs.iter().find(|d| d.database_id == id) else { continue };
        let l = [("datname", d.physical_name.as_str())];
        if let Some(t) = last {
            out.push(Sample::new("dbaas_backup_last_success_timestamp_seconds", &l, t));
        }
        if let Some(t) = verified {
            out.push(Sample::new("dbaas_backup_last_verified_timestamp_seconds", &l, t));
        }
        if let Some(v) = verify {
            out.push(Sample::new("dbaas_backup_verify_failed", &l, if v == "failed" { 1.0 } else { 0.0 }));
        }
        // Twice the gap between two slots of its backup schedule (a missed slot is allowed
        // to finish; a second one is not).
        let gap = cron.as_deref().and_then(|c| dbaas_engine::timing::parse_cron(c).ok()).and_then(|c| {
            let a = dbaas_engine::timing::next_slot(&c, now)?;
            let b = dbaas_engine::timing::next_slot(&c, a)?;
            Some((b - a).num_seconds() as f64)
        });
        if let Some(g) = gap {
            out.push(Sample::new("dbaas_backup_max_age_seconds", &l, 2.0 * g));
        }
    }
    Ok(out)
}

/// Puts `extra` labels in front of a sample's own.
fn decorate(mut s: Sample, extra: &[(&str, &str)]) -> Sample {
    let mut labels: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    labels.append(&mut s.labels);
    s.labels = labels;
    s
}

/// The per-database samples of `dbs` (collected and backup series), labelled.
async fn per_database(db: &sqlx::PgPool, dbs: &[&Named], with_place: bool) -> Result<Vec<Sample>, sqlx::Error> {
    let instances: Vec<Uuid> = {
        let mut v: Vec<Uuid> = dbs.iter().map(|d| d.instance_id).collect();
        v.sort();
        v.dedup();
        v
    };
    let collected = instance_samples(db, &instances).await?;
    let ids: Vec<Uuid> = dbs.iter().map(|d| d.database_id).collect();
    let mut samples: Vec<(Uuid, Sample)> = Vec::new();
    for (inst, list) in &collected {
        for s in list {
            samples.push((*inst, s.clone()));
        }
    }
    let mut own = database_samples(db, &ids).await?;
    own.extend(backup_samples(db, dbs).await?);
    let mut out = Vec::new();
    for (inst, s) in samples.into_iter().chain(own.into_iter().map(|s| (Uuid::nil(), s))) {
        let Some(datname) = s.label("datname") else { continue };
        let found = dbs.iter().find(|d| d.physical_name == datname && (inst.is_nil() || d.instance_id == inst));
        let Some(d) = found else { continue };
        let extra: Vec<(&str, &str)> = if with_place {
            vec![
                ("tenant", d.tenant.as_str()),
                ("database", d.name.as_str()),
                ("environment", d.environment.as_str()),
                ("instance", d.instance.as_str()),
            ]
        } else {
            vec![("tenant", d.tenant.as_str()), ("database", d.name.as_str())]
        };
        out.push(decorate(s, &extra));
    }
    Ok(out)
}

/// Everything about one instance: its own series and every database's on it, the ones the
/// service manages labelled with their tenant and logical name (others, such as `postgres`,
/// with empty ones).
pub async fn instance(db: &sqlx::PgPool, id: Uuid) -> Result<String, sqlx::Error> {
    let dbs = named(db, Some(id), None, None).await?;
    let refs: Vec<&Named> = dbs.iter().collect();
    let collected = instance_samples(db, &[id]).await?.remove(&id).unwrap_or_default();
    let mut out: Vec<Sample> = Vec::new();
    for s in collected {
        match s.label("datname") {
            None => out.push(s),
            Some(dn) if !dbs.iter().any(|d| d.physical_name == dn) => {
                out.push(decorate(s, &[("tenant", ""), ("database", "")]))
            }
            Some(_) => {}
        }
    }
    out.extend(per_database(db, &refs, false).await?);
    if out.is_empty() {
        out.push(Sample::new("pg_up", &[], 0.0));
    }
    Ok(render(&out))
}

/// The series of a tenant's databases (all tenants' for `None`), on every instance.
pub async fn tenant(db: &sqlx::PgPool, tenant: Option<Uuid>) -> Result<String, sqlx::Error> {
    let dbs = named(db, None, tenant, None).await?;
    let refs: Vec<&Named> = dbs.iter().collect();
    Ok(render(&per_database(db, &refs, true).await?))
}

/// The latest collected samples of one database (for the JSON summary).
pub async fn database_values(db: &sqlx::PgPool, database: Uuid) -> Result<Vec<Sample>, sqlx::Error> {
    let dbs = named(db, None, None, Some(database)).await?;
    let refs: Vec<&Named> = dbs.iter().collect();
    per_database(db, &refs, false).await
}
