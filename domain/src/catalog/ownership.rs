//! Ownership markers: which databases and roles on a target are the service's own.
//!
//! Everything the service creates carries a comment naming its record ([`Marker`]). Before it
//! alters, grants on, re-passwords or drops anything, the service reads the marker: an object
//! with the same name but without our exact marker is foreign (created by hand, by another
//! tool, or by a record long gone) and is never touched; the operation fails with
//! `name_conflict` naming it, and nothing is changed.
//!
//! Roles are created together with their marker in one transaction, so an unmarked role is
//! never ours. `CREATE DATABASE` cannot run in a transaction, so a crash can leave our new
//! database unmarked: a database with no comment, owned by our (marked) admin role, is ours
//! and gets its marker (only superusers and members of that role could have made it).

use crate::catalog::conn::InstanceTarget;
use std::time::Duration;

use sqlx::PgConnection;

use super::conn::{InstanceRow, MAINTENANCE_DB};
use crate::crypto::MasterKey;
use dbaas_engine::OpError;
use dbaas_store::naming::{Marker, PgQuote};

/// What a name on the target currently is, from our point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Absent,
    Ours,
    /// Ours, but the marker is missing (a crash between CREATE DATABASE and COMMENT).
    OursUnmarked,
    /// Present and not ours: what it carries instead (for the error message).
    Foreign(String),
}

impl Ownership {
    pub fn is_ours(&self) -> bool {
        matches!(self, Self::Ours | Self::OursUnmarked)
    }
}

fn describe_foreign(comment: Option<&str>) -> String {
    match comment {
        None => "no dbaas marker".to_string(),
        Some(c) if c.starts_with("dbaas:") => format!("the marker of another record ({c})"),
        Some(_) => "a comment that is not a dbaas marker".to_string(),
    }
}

/// What a role is, from its catalog row (`found`: its comment, when the role exists).
pub fn classify_role(found: Option<Option<&str>>, marker: Marker) -> Ownership {
    match found {
        None => Ownership::Absent,
        Some(Some(c)) if c == marker.text() => Ownership::Ours,
        Some(c) => Ownership::Foreign(describe_foreign(c)),
    }
}

/// What an existing database is, from its owner and comment. `admin_is_ours`: its admin
/// role exists with our marker, which vouches for a database it owns without a comment.
pub fn classify_database(
    owner: &str,
    comment: Option<&str>,
    marker: Marker,
    admin_role: &str,
    admin_is_ours: bool,
) -> Ownership {
    match comment {
        Some(c) if c == marker.text() => Ownership::Ours,
        None if owner == admin_role && admin_is_ours => Ownership::OursUnmarked,
        c => Ownership::Foreign(describe_foreign(c)),
    }
}

pub async fn role(conn: &mut PgConnection, name: &str, marker: Marker) -> Result<Ownership, OpError> {
    let found: Option<Option<String>> = sqlx::query_scalar(
        "SELECT pg_catalog.shobj_description(r.oid, 'pg_authid') FROM pg_catalog.pg_roles r \
         WHERE r.rolname OPERATOR(pg_catalog.=) $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(classify_role(found.as_ref().map(|c| c.as_deref()), marker))
}

/// `admin_role` is the database's admin role and `admin_marker` its marker: a database owned
/// by it without a comment is ours, unmarked.
pub async fn database(
    conn: &mut PgConnection,
    name: &str,
    marker: Marker,
    admin_role: &str,
    admin_marker: Marker,
) -> Result<Ownership, OpError> {
    let found: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT pg_catalog.pg_get_userbyid(d.datdba)::text, pg_catalog.shobj_description(d.oid, 'pg_database') \
         FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((owner, comment)) = found else { return Ok(Ownership::Absent) };
    let admin_is_ours = comment.is_none() && role(conn, admin_role, admin_marker).await? == Ownership::Ours;
    Ok(classify_database(&owner, comment.as_deref(), marker, admin_role, admin_is_ours))
}

pub async fn mark_database(conn: &mut PgConnection, name: &str, marker: Marker) -> Result<(), OpError> {
    super::conn::exec(conn, &format!("COMMENT ON DATABASE {} IS {}", name.pg_ident(), marker.text().pg_literal())).await
}

/// The error of an operation that met foreign objects: nothing was touched.
/// The comment (our marker, when we made it) of database `name`; None when there is no such
/// database.
pub async fn database_comment(conn: &mut PgConnection, name: &str) -> Result<Option<String>, OpError> {
    let c: Option<Option<String>> = sqlx::query_scalar(
        "SELECT pg_catalog.shobj_description(d.oid, 'pg_database') FROM pg_catalog.pg_database d \
         WHERE d.datname OPERATOR(pg_catalog.=) $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(c.map(Option::unwrap_or_default))
}

/// Creates database `name` owned by `owner` (a tenant's admin role), marked with `marker`, with
/// nothing granted to PUBLIC: a scratch or side database the service makes and later drops.
pub async fn create_marked_database(
    conn: &mut PgConnection,
    name: &str,
    owner: &str,
    marker: &str,
) -> Result<(), OpError> {
    let db = name.pg_ident();
    super::conn::exec(
        conn,
        &format!("CREATE DATABASE {db} WITH OWNER {} TEMPLATE template0 ENCODING 'UTF8'", owner.pg_ident()),
    )
    .await?;
    super::conn::exec(conn, &format!("COMMENT ON DATABASE {db} IS {}", marker.pg_literal())).await?;
    super::conn::exec(conn, &format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC")).await
}

/// Drops database `name` when its marker satisfies `ours` (nothing to do when it does not
/// exist); one without such a marker is refused, never touched.
pub async fn drop_marked_database(
    conn: &mut PgConnection,
    name: &str,
    ours: impl Fn(&str) -> bool,
    what: &str,
) -> Result<(), OpError> {
    match database_comment(conn, name).await? {
        None => Ok(()),
        Some(c) if ours(&c) => {
            super::conn::exec(conn, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", name.pg_ident())).await
        }
        Some(_) => Err(conflict(&[format!("database {name} (not {what})")])),
    }
}

pub fn conflict(found: &[String]) -> OpError {
    OpError::permanent(
        "name_conflict",
        format!(
            "{} already exist(s) on the instance and {} not the service's (nothing was changed; rename or remove \
             {} by hand, or choose another database name)",
            found.join(", "),
            if found.len() == 1 { "is" } else { "are" },
            if found.len() == 1 { "it" } else { "them" },
        ),
    )
}

/// The objects a database record would use, with their markers.
pub struct Claim<'a> {
    pub database: (&'a str, Marker),
    /// The admin role first: it vouches for an unmarked database.
    pub roles: Vec<(String, Marker)>,
}

/// Every object of the claim that exists and is not ours, described for a message.
pub async fn foreign_objects(conn: &mut PgConnection, claim: &Claim<'_>) -> Result<Vec<String>, OpError> {
    let mut found = Vec::new();
    for (name, marker) in &claim.roles {
        if let Ownership::Foreign(why) = role(conn, name, *marker).await? {
            found.push(format!("role {name} ({why})"));
        }
    }
    let (admin, admin_marker) = claim.roles.first().map(|(n, m)| (n.as_str(), *m)).unwrap_or(("", claim.database.1));
    if let Ownership::Foreign(why) = database(conn, claim.database.0, claim.database.1, admin, admin_marker).await? {
        found.push(format!("database {} ({why})", claim.database.0));
    }
    Ok(found)
}

/// The check before a database record is created or re-adopted: the names it needs must be
/// free or already ours. An unreachable instance is not an error here (the operation does the
/// same check under its lock); `Ok(None)` then.
pub async fn preflight(inst: &InstanceRow, key: &MasterKey, claim: &Claim<'_>) -> Result<Option<Vec<String>>, OpError> {
    let target = inst.target(key)?;
    let check = async {
        let mut conn = target.connect(MAINTENANCE_DB).await?;
        foreign_objects(&mut conn, claim).await
    };
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Ok(found)) => Ok(Some(found)),
        Ok(Err(e)) if e.retryable => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(None),
    }
}
