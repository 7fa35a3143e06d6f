//! Compares a database record with the instance's catalog.

use std::time::Duration;

use dbaas_client::{Access, Drift};

use super::conn::{InstanceRow, MAINTENANCE_DB};
use super::record::DatabaseRow;
use crate::crypto::MasterKey;
use crate::ops::OpError;

const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check(db: &DatabaseRow, inst: &InstanceRow, key: &MasterKey) -> Drift {
    match tokio::time::timeout(CHECK_TIMEOUT, inspect(db, inst, key)).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => Drift { checked: false, error: Some(e.to_string()), ..Default::default() },
        Err(_) => {
            Drift { checked: false, error: Some("the instance did not answer in time".into()), ..Default::default() }
        }
    }
}

async fn inspect(db: &DatabaseRow, inst: &InstanceRow, key: &MasterKey) -> Result<Drift, OpError> {
    let target = inst.target(key)?;
    let names = db.physical();
    let admin = names.role(Access::Admin);
    let mut drift = Drift { checked: true, ..Default::default() };
    let mut maint = target.connect(MAINTENANCE_DB).await?;
    for access in Access::ALL {
        let role = names.role(access);
        if !super::conn::role_exists(&mut maint, &role).await? {
            drift.missing_roles.push(role);
        }
    }
    let found: Option<(String, i32)> = sqlx::query_as(
        "SELECT pg_catalog.pg_get_userbyid(datdba)::text, datconnlimit FROM pg_catalog.pg_database WHERE datname = $1",
    )
    .bind(&names.database)
    .fetch_optional(&mut maint)
    .await?;
    let Some((owner, limit)) = found else {
        drift.database_missing = true;
        return Ok(drift);
    };
    if owner != admin {
        drift.differences.push(format!("database owner is {owner}, expected {admin}"));
    }
    if limit != db.connection_limit {
        drift.differences.push(format!("connection limit is {limit}, expected {}", db.connection_limit));
    }
    let mut conn = target.connect(&names.database).await?;
    let installed: Vec<String> =
        sqlx::query_scalar("SELECT extname::text FROM pg_catalog.pg_extension").fetch_all(&mut conn).await?;
    for ext in &db.extensions {
        if !installed.contains(ext) {
            drift.differences.push(format!("extension {ext} is not installed"));
        }
    }
    let foreign: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, pg_catalog.pg_get_userbyid(c.relowner)::text \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
           AND pg_catalog.pg_get_userbyid(c.relowner) <> $1 \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend dep WHERE dep.objid = c.oid AND dep.deptype = 'e') \
         ORDER BY 1, 2 LIMIT 20",
    )
    .bind(&admin)
    .fetch_all(&mut conn)
    .await?;
    for (schema, rel, owner) in foreign {
        drift.differences.push(format!("{schema}.{rel} is owned by {owner}, not {admin}"));
    }
    Ok(drift)
}
