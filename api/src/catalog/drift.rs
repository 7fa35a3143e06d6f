//! Compares a database record with the instance's catalog.
//!
//! What the instance-wide catalogs show (roles, the database, its owner, limit and marker) is
//! read in the maintenance database as the service. What only the database itself can show
//! (extensions, objects not owned by admin) is read there as the database's admin role, so a
//! tenant's operators, functions or `search_path` can never run with the service's rights.

use std::time::Duration;

use dbaas_client::{Access, Drift};

use super::conn::{InstanceRow, MAINTENANCE_DB};
use super::ownership::{self, Ownership};
use super::record::{self, DatabaseRow};
use crate::crypto::MasterKey;
use crate::naming::Marker;
use crate::ops::OpError;

const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check(state_db: &sqlx::PgPool, db: &DatabaseRow, inst: &InstanceRow, key: &MasterKey) -> Drift {
    match tokio::time::timeout(CHECK_TIMEOUT, inspect(state_db, db, inst, key)).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => Drift { checked: false, error: Some(e.to_string()), ..Default::default() },
        Err(_) => {
            Drift { checked: false, error: Some("the instance did not answer in time".into()), ..Default::default() }
        }
    }
}

async fn inspect(
    state_db: &sqlx::PgPool,
    db: &DatabaseRow,
    inst: &InstanceRow,
    key: &MasterKey,
) -> Result<Drift, OpError> {
    let target = inst.target(key)?;
    let creds = record::credentials(state_db, db.id).await?;
    let claim = super::provision::claim(db, &creds)?;
    let names = db.physical();
    let admin = names.role(Access::Admin);
    let mut drift = Drift { checked: true, ..Default::default() };
    let mut maint = target.connect(MAINTENANCE_DB).await?;
    // Read, write, admin: the order the API lists roles in.
    for (role, marker) in claim.roles.iter().rev() {
        match ownership::role(&mut maint, role, *marker).await? {
            Ownership::Absent => drift.missing_roles.push(role.clone()),
            Ownership::Foreign(why) => drift.differences.push(format!("role {role} is not the service's ({why})")),
            Ownership::Ours | Ownership::OursUnmarked => {}
        }
    }
    let (admin_role, admin_marker) = (&claim.roles[0].0, claim.roles[0].1);
    match ownership::database(&mut maint, &names.database, Marker::Database(db.id), admin_role, admin_marker).await? {
        Ownership::Absent => {
            drift.database_missing = true;
            return Ok(drift);
        }
        Ownership::Foreign(why) => {
            drift.differences.push(format!("database {} is not the service's ({why})", names.database));
            return Ok(drift);
        }
        Ownership::OursUnmarked => drift.differences.push("the database has lost its dbaas marker".into()),
        Ownership::Ours => {}
    }
    let (owner, limit): (String, i32) = sqlx::query_as(
        "SELECT pg_catalog.pg_get_userbyid(d.datdba)::text, d.datconnlimit FROM pg_catalog.pg_database d \
         WHERE d.datname OPERATOR(pg_catalog.=) $1",
    )
    .bind(&names.database)
    .fetch_one(&mut maint)
    .await?;
    if owner != admin {
        drift.differences.push(format!("database owner is {owner}, expected {admin}"));
    }
    if limit != db.connection_limit {
        drift.differences.push(format!("connection limit is {limit}, expected {}", db.connection_limit));
    }
    if drift.missing_roles.contains(&admin) {
        return Ok(drift);
    }
    let mut conn = match super::tenant_session::connect(&target, key, db, &creds).await {
        Ok(c) => c,
        Err(e) if e.code == "admin_login_failed" => {
            drift.differences.push(e.message);
            return Ok(drift);
        }
        Err(e) => return Err(e),
    };
    let installed: Vec<String> =
        sqlx::query_scalar("SELECT e.extname::text FROM pg_catalog.pg_extension e").fetch_all(&mut conn).await?;
    for ext in &db.extensions {
        if !installed.contains(ext) {
            drift.differences.push(format!("extension {ext} is not installed"));
        }
    }
    let foreign: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, pg_catalog.pg_get_userbyid(c.relowner)::text \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,S,f}'::pg_catalog.\"char\"[]) \
           AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[]) \
           AND n.nspname OPERATOR(pg_catalog.!~) '^pg_' \
           AND c.relowner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1) \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend dep WHERE dep.objid OPERATOR(pg_catalog.=) c.oid \
                           AND dep.deptype OPERATOR(pg_catalog.=) 'e') \
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
