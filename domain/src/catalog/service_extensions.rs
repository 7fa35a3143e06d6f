//! Extensions the service installs in a tenant's database for its own work, and their
//! removal when that work ends.
//!
//! pg_repack (and pgstattuple, which gives its bloat figure) can only be created by a
//! superuser. Left in the database, `pg_dump` run as the tenant's admin role writes
//! `CREATE EXTENSION pg_repack` into every later backup, and `pg_restore` as that role then
//! aborts ("must be superuser"): the backups would be listed good and restore nothing. So a
//! repack removes them when it ends, whether it succeeded or not; a backup removes any that an
//! interrupted repack left (operations on one database never overlap, so none is in use then);
//! and a one-off operation per database cleans those repacked before this rule existed.
//!
//! Only what the service made is removed: the service marks the extensions it creates
//! (`COMMENT ON EXTENSION … IS 'dbaas:service-extension'`, which only their superuser owner
//! can change), and repacks and backups remove marked ones only, so an extension a superuser
//! installed on purpose (on a registered instance) stays, and its backups say why they fail.
//! The one-off cleanup, run only on databases the service repacked before it marked them,
//! removes pg_repack and the pgstattuple in pg_repack's `repack` schema marked or not.
//! Neither is removed when something of the tenant's depends on it.
//! A database's own extensions are never among them: those are created as its admin role,
//! which PostgreSQL allows for trusted extensions only, and both of these are untrusted.

use sqlx::PgConnection;

use super::conn::exec;
use dbaas_engine::OpError;

/// What removing the service's extensions did, for the operation's log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub dropped: Vec<&'static str>,
    /// Extensions left in place, and why.
    pub kept: Vec<String>,
}

/// The comment the service puts on an extension it creates for its own work.
pub const MARK: &str = "dbaas:service-extension";

/// Which of the service's extensions [`remove`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Those carrying [`MARK`]: what this version of the service made.
    Marked,
    /// Also unmarked ones: for databases repacked before the service marked them.
    LeftByEarlierRepacks,
}

/// Marks an extension the service just created (`conn`: the service's session).
pub async fn mark(conn: &mut PgConnection, ext: &str) -> Result<(), OpError> {
    use dbaas_store::naming::PgQuote;
    exec(conn, &format!("COMMENT ON EXTENSION {} IS {}", ext.pg_ident(), MARK.pg_literal())).await
}

async fn is_marked(conn: &mut PgConnection, ext: &str) -> Result<bool, OpError> {
    let c: Option<Option<String>> = sqlx::query_scalar(
        "SELECT pg_catalog.obj_description(e.oid, 'pg_extension') FROM pg_catalog.pg_extension e \
         WHERE e.extname OPERATOR(pg_catalog.=) $1",
    )
    .bind(ext)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(c.flatten().as_deref() == Some(MARK))
}

/// Removes pgstattuple (from schema `repack`) and pg_repack, as `scope` says. `conn` is the
/// service's session in the database.
pub async fn remove(conn: &mut PgConnection, scope: Scope) -> Result<Removed, OpError> {
    let mut out = Removed::default();
    let ours = |marked: bool| marked || scope == Scope::LeftByEarlierRepacks;
    let stattuple_in_repack: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e \
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
           WHERE e.extname OPERATOR(pg_catalog.=) 'pgstattuple' AND n.nspname OPERATOR(pg_catalog.=) 'repack')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let stattuple_in_repack = stattuple_in_repack && ours(is_marked(conn, "pgstattuple").await?);
    if stattuple_in_repack {
        match foreign_dependents(conn, "pgstattuple").await? {
            None => {
                exec(conn, "DROP EXTENSION pgstattuple").await?;
                out.dropped.push("pgstattuple");
            }
            Some(why) => out.kept.push(format!("pgstattuple: {why}")),
        }
    }
    let repack: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_repack')")
            .fetch_one(&mut *conn)
            .await?;
    if repack && ours(is_marked(conn, "pg_repack").await?) {
        match foreign_dependents(conn, "pg_repack").await? {
            // CASCADE takes what an interrupted pg_repack left: its log tables in `repack`
            // and the `repack_trigger` on the table it was working on (nothing else depends
            // on the extension: checked just above).
            None => {
                exec(conn, "DROP EXTENSION pg_repack CASCADE").await?;
                out.dropped.push("pg_repack");
            }
            Some(why) => out.kept.push(format!("pg_repack: {why}")),
        }
    }
    Ok(out)
}

/// Objects of the tenant's (outside schema `repack`: not the rules of pg_repack's own views,
/// nor its triggers) that depend on one of the extension's members: dropping it would take
/// them too.
async fn foreign_dependents(conn: &mut PgConnection, ext: &str) -> Result<Option<String>, OpError> {
    let found: Vec<String> = sqlx::query_scalar(
        "WITH members AS ( \
           SELECT d.classid, d.objid FROM pg_catalog.pg_depend d \
           JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid \
           WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass \
             AND d.deptype OPERATOR(pg_catalog.=) 'e' AND e.extname OPERATOR(pg_catalog.=) $1) \
         SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_catalog.pg_depend d \
         JOIN members m ON m.classid OPERATOR(pg_catalog.=) d.refclassid AND m.objid OPERATOR(pg_catalog.=) d.refobjid \
         WHERE d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['n', 'a']::\"char\"[]) \
           AND NOT EXISTS (SELECT 1 FROM members x WHERE x.classid OPERATOR(pg_catalog.=) d.classid \
                             AND x.objid OPERATOR(pg_catalog.=) d.objid) \
           AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass AND EXISTS ( \
                 SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.oid OPERATOR(pg_catalog.=) d.objid \
                   AND t.tgname OPERATOR(pg_catalog.~~) 'repack\\_trigger%')) \
           AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND EXISTS ( \
                 SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                 WHERE c.oid OPERATOR(pg_catalog.=) d.objid AND n.nspname OPERATOR(pg_catalog.=) 'repack')) \
           AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND EXISTS ( \
                 SELECT 1 FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.ev_class \
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                 WHERE r.oid OPERATOR(pg_catalog.=) d.objid AND n.nspname OPERATOR(pg_catalog.=) 'repack')) \
           AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass AND EXISTS ( \
                 SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace \
                 WHERE t.oid OPERATOR(pg_catalog.=) d.objid AND n.nspname OPERATOR(pg_catalog.=) 'repack')) \
         ORDER BY 1 LIMIT 5",
    )
    .bind(ext)
    .fetch_all(&mut *conn)
    .await?;
    Ok((!found.is_empty()).then(|| format!("kept: {} depend(s) on it", found.join(", "))))
}

/// Extensions in the database that its admin role could not create again on restore (not
/// trusted). `pg_dump` writes every extension of the database into the dump, so run in the
/// dump's snapshot this is exactly the dump's untrusted `EXTENSION` entries.
pub async fn unrestorable(conn: &mut PgConnection) -> Result<Vec<String>, OpError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT e.extname::pg_catalog.text FROM pg_catalog.pg_extension e \
         WHERE e.extname OPERATOR(pg_catalog.<>) 'plpgsql' AND NOT EXISTS ( \
           SELECT 1 FROM pg_catalog.pg_available_extension_versions v \
           WHERE v.name OPERATOR(pg_catalog.=) e.extname AND v.version OPERATOR(pg_catalog.=) e.extversion AND v.trusted) \
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(names)
}

/// Says in the operation's log what [`remove`] did.
pub async fn log(ctx: &crate::operation::OpContext, removed: &Result<Removed, OpError>) {
    match removed {
        Ok(r) => {
            if !r.dropped.is_empty() {
                ctx.log("info", &format!("removed the service's extension(s) {}", r.dropped.join(", "))).await;
            }
            for k in &r.kept {
                ctx.log("warn", k).await;
            }
        }
        Err(e) => ctx.log("error", &format!("removing the service's extensions: {}", e.message)).await,
    }
}

/// The `remove_service_extensions` operation: removes them from one database, under the
/// database's lock. A database no longer on its instance (deleted, retained, not ours) has
/// nothing to clean.
pub async fn run(ctx: &crate::operation::OpContext) -> Result<(), OpError> {
    use dbaas_client::DatabaseStatus;
    let s = &ctx.state;
    let (db, _inst, target) = super::record::for_operation(&s.db, &s.key, ctx.op.target_id).await?;
    if matches!(db.status(), DatabaseStatus::Deleted | DatabaseStatus::Retained) {
        ctx.log("info", &format!("the database is {}: nothing to clean", db.status().as_str())).await;
        return Ok(());
    }
    let names = db.physical();
    let mut locked = super::conn::Locked::database(&target, &names.database).await?;
    let ours = super::ownership::database_comment(&mut locked.conn, &names.database).await?;
    if ours.as_deref() != Some(dbaas_store::naming::Marker::Database(db.id).text().as_str()) {
        ctx.log("info", &format!("{} is not on the instance as ours: nothing to clean", names.database)).await;
        return Ok(());
    }
    let mut conn = target.connect(&names.database).await?;
    // Enqueued only for databases the service repacked: what is there is what it left.
    let removed = remove(&mut conn, Scope::LeftByEarlierRepacks).await;
    log(ctx, &removed).await;
    let removed = removed?;
    if removed.dropped.is_empty() && removed.kept.is_empty() {
        ctx.log("info", "no extension of the service's was left").await;
    }
    Ok(())
}
