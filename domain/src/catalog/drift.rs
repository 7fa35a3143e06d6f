//! Compares database records with an instance's catalog.
//!
//! Two levels. What the instance-wide catalogs show (roles, the database, its owner, limit and
//! marker) is read in the maintenance database as the service, for any number of databases in
//! two queries ([`CatalogFacts::read`]), and compared without a server ([`compare`]). What only
//! the database itself can show (extensions, objects not owned by admin) is read there as the
//! database's admin role ([`inside`]), so a tenant's operators, functions or `search_path`
//! can never run with the service's rights.
//!
//! The background reconciler ([`super::reconcile`]) runs both for whole instances; [`check`]
//! runs them live for one database (`GET …?fresh=true`, and operations that must know now).

use crate::catalog::conn::InstanceTarget;
use std::collections::HashMap;
use std::time::Duration;

use dbaas_client::{Access, Drift};
use sqlx::PgConnection;

use super::conn::{InstanceRow, Target, MAINTENANCE_DB};
use super::ownership::{self, Ownership};
use super::record::{self, CredentialRow, DatabaseRow};
use crate::crypto::MasterKey;
use dbaas_engine::OpError;
use dbaas_store::naming::Marker;

const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A database as `pg_database` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseFacts {
    pub owner: String,
    pub connection_limit: i32,
    pub comment: Option<String>,
}

/// The instance-wide catalog rows of some roles and databases (absent names are missing).
#[derive(Debug, Clone, Default)]
pub struct CatalogFacts {
    /// Role name → its comment.
    pub roles: HashMap<String, Option<String>>,
    pub databases: HashMap<String, DatabaseFacts>,
}

impl CatalogFacts {
    /// Two catalog queries, however many names.
    pub async fn read(conn: &mut PgConnection, roles: &[String], databases: &[String]) -> Result<Self, OpError> {
        let role_rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT r.rolname::text, pg_catalog.shobj_description(r.oid, 'pg_authid') FROM pg_catalog.pg_roles r \
             WHERE r.rolname OPERATOR(pg_catalog.=) ANY ($1::text[])",
        )
        .bind(roles)
        .fetch_all(&mut *conn)
        .await?;
        let db_rows: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(
            "SELECT d.datname::text, pg_catalog.pg_get_userbyid(d.datdba)::text, d.datconnlimit, \
                    pg_catalog.shobj_description(d.oid, 'pg_database') \
             FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) ANY ($1::text[])",
        )
        .bind(databases)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self {
            roles: role_rows.into_iter().collect(),
            databases: db_rows
                .into_iter()
                .map(|(name, owner, connection_limit, comment)| {
                    (name, DatabaseFacts { owner, connection_limit, comment })
                })
                .collect(),
        })
    }

    fn role(&self, name: &str, marker: Marker) -> Ownership {
        ownership::classify_role(self.roles.get(name).map(|c| c.as_deref()), marker)
    }
}

/// The names of the roles and database a record claims, admin role first.
pub fn claimed_names(db: &DatabaseRow, creds: &[CredentialRow]) -> Result<(Vec<(String, Marker)>, String), OpError> {
    let claim = super::provision::claim(db, creds)?;
    Ok((claim.roles, claim.database.0.to_string()))
}

/// The instance-wide comparison of one record with the catalog. Returns the drift and
/// whether the in-database check can follow (the database is ours and its admin role exists).
pub fn compare(db: &DatabaseRow, roles: &[(String, Marker)], facts: &CatalogFacts) -> (Drift, bool) {
    let names = db.physical();
    let admin = names.role(Access::Admin);
    let mut drift = Drift { checked: true, ..Default::default() };
    // Read, write, admin: the order the API lists roles in.
    for (role, marker) in roles.iter().rev() {
        match facts.role(role, *marker) {
            Ownership::Absent => drift.missing_roles.push(role.clone()),
            Ownership::Foreign(why) => drift.differences.push(format!("role {role} is not the service's ({why})")),
            Ownership::Ours | Ownership::OursUnmarked => {}
        }
    }
    let Some(found) = facts.databases.get(&names.database) else {
        drift.database_missing = true;
        return (drift, false);
    };
    let (admin_role, admin_marker) = (&roles[0].0, roles[0].1);
    let admin_is_ours = facts.role(admin_role, admin_marker) == Ownership::Ours;
    match ownership::classify_database(
        &found.owner,
        found.comment.as_deref(),
        Marker::Database(db.id),
        admin_role,
        admin_is_ours,
    ) {
        Ownership::Foreign(why) => {
            drift.differences.push(format!("database {} is not the service's ({why})", names.database));
            return (drift, false);
        }
        Ownership::OursUnmarked => drift.differences.push("the database has lost its dbaas marker".into()),
        Ownership::Ours | Ownership::Absent => {}
    }
    if found.owner != admin {
        drift.differences.push(format!("database owner is {}, expected {admin}", found.owner));
    }
    if found.connection_limit != db.connection_limit {
        drift
            .differences
            .push(format!("connection limit is {}, expected {}", found.connection_limit, db.connection_limit));
    }
    let deep = !drift.missing_roles.contains(&admin);
    (drift, deep)
}

/// What only the database itself shows, read as its admin role: extensions the record wants
/// that are not installed, and up to 20 relations not owned by the admin role.
pub async fn inside(
    target: &Target,
    key: &MasterKey,
    db: &DatabaseRow,
    creds: &[CredentialRow],
) -> Result<Vec<String>, OpError> {
    let admin = db.physical().role(Access::Admin);
    let mut conn = match super::tenant_session::connect(target, key, db, creds).await {
        Ok(c) => c,
        Err(e) if e.code == "admin_login_failed" => return Ok(vec![e.message]),
        Err(e) => return Err(e),
    };
    let mut differences = Vec::new();
    let installed: Vec<String> =
        sqlx::query_scalar("SELECT e.extname::text FROM pg_catalog.pg_extension e").fetch_all(&mut conn).await?;
    for ext in &db.extensions {
        if !installed.contains(ext) {
            differences.push(format!("extension {ext} is not installed"));
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
        differences.push(format!("{schema}.{rel} is owned by {owner}, not {admin}"));
    }
    Ok(differences)
}

/// A live check of one database: both levels, now, within a few seconds.
pub async fn check(state_db: &sqlx::PgPool, db: &DatabaseRow, inst: &InstanceRow, key: &MasterKey) -> Drift {
    match tokio::time::timeout(CHECK_TIMEOUT, live(state_db, db, inst, key)).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => Drift { checked: false, error: Some(e.to_string()), ..Default::default() },
        Err(_) => {
            Drift { checked: false, error: Some("the instance did not answer in time".into()), ..Default::default() }
        }
    }
}

async fn live(
    state_db: &sqlx::PgPool,
    db: &DatabaseRow,
    inst: &InstanceRow,
    key: &MasterKey,
) -> Result<Drift, OpError> {
    let target = inst.target(key)?;
    let creds = record::credentials(state_db, db.id).await?;
    let (roles, database) = claimed_names(db, &creds)?;
    let role_names: Vec<String> = roles.iter().map(|(r, _)| r.clone()).collect();
    let mut maint = target.connect(MAINTENANCE_DB).await?;
    let facts = CatalogFacts::read(&mut maint, &role_names, std::slice::from_ref(&database)).await?;
    drop(maint);
    let (mut drift, deep) = compare(db, &roles, &facts);
    if deep {
        drift.differences.extend(inside(&target, key, db, &creds).await?);
    }
    // Microseconds, as the state database keeps it: the stored result reads back equal.
    drift.checked_at = Some(chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6));
    Ok(drift)
}
