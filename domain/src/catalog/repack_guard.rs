//! When pg_repack may run as the service in a tenant's database, and on which tables.
//!
//! pg_repack 1.4.8 only works as superuser, and its session uses
//! `search_path = pg_catalog, pg_temp, public`, where `public` belongs to the tenant. Three
//! guards keep tenant code from running with those rights:
//! - [`database`]: no tenant-owned function in `public` shares a name with a `pg_catalog` one
//!   (an overload with a better-matching signature would be chosen, e.g.
//!   `public.pg_try_advisory_lock(text, int)`), and no tenant-owned operator lives there;
//! - [`foreign_repack_schema`]: the `repack` schema, whose functions pg_repack calls, is the
//!   extension's own and owned by a superuser (a tenant-made `repack` schema would be theirs);
//! - [`table`]: the table and its indexes depend on nothing a non-superuser owns (column
//!   types, index expression functions and operators, operator classes, collations): pg_repack
//!   rebuilds the indexes on a copy the service owns, so their expressions would run as the
//!   service.
//!
//! Objects created by trusted extensions are owned by the bootstrap superuser, so `citext`,
//! `pg_trgm` and the like pass; anything the tenant wrote does not.

use sqlx::PgConnection;

use super::maintenance::Table;
use dbaas_engine::OpError;

/// Why pg_repack must not run in this database at all, if it must not.
pub async fn database(conn: &mut PgConnection) -> Result<Option<String>, OpError> {
    let shadowing: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::pg_catalog.regprocedure::pg_catalog.text FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.proowner \
         WHERE p.pronamespace OPERATOR(pg_catalog.=) 'public'::pg_catalog.regnamespace AND NOT r.rolsuper \
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_proc c \
                       WHERE c.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace \
                         AND c.proname OPERATOR(pg_catalog.=) p.proname) \
         UNION ALL \
         SELECT o.oid::pg_catalog.regoperator::pg_catalog.text FROM pg_catalog.pg_operator o \
         JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) o.oprowner \
         WHERE o.oprnamespace OPERATOR(pg_catalog.=) 'public'::pg_catalog.regnamespace AND NOT r.rolsuper \
         ORDER BY 1 LIMIT 5",
    )
    .fetch_all(&mut *conn)
    .await
    .or_else(|e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
        // No schema `public` at all: nothing of the tenant's on pg_repack's path.
        Some("3F000") => Ok(Vec::new()),
        _ => Err(e),
    })?;
    if shadowing.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "schema public holds tenant-defined {} that pg_repack's superuser session could resolve to instead of \
         the built-in ones (rename or move them to another schema)",
        shadowing.join(", ")
    )))
}

/// Why the existing `repack` schema cannot be trusted, if it cannot.
pub async fn foreign_repack_schema(conn: &mut PgConnection) -> Result<Option<String>, OpError> {
    let found: Option<(bool, bool, String)> = sqlx::query_as(
        "SELECT r.rolsuper, EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                  JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid \
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass \
                    AND d.objid OPERATOR(pg_catalog.=) n.oid AND d.deptype OPERATOR(pg_catalog.=) 'e' \
                    AND e.extname OPERATOR(pg_catalog.=) 'pg_repack'), r.rolname::pg_catalog.text \
         FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner \
         WHERE n.nspname OPERATOR(pg_catalog.=) 'repack'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match found {
        None | Some((true, true, _)) => None,
        Some((_, _, owner)) => Some(format!(
            "a schema named repack exists that is not the pg_repack extension's (owner {owner}); pg_repack would \
             call functions from it as superuser"
        )),
    })
}

/// The schema of a usable pgstattuple: an existing one only if a superuser owns its schema,
/// else created in `repack` (pg_repack's superuser-owned schema). `None` when unavailable.
pub async fn pgstattuple_schema(conn: &mut PgConnection) -> Result<Option<String>, OpError> {
    let existing: Option<(String, bool)> = sqlx::query_as(
        "SELECT n.nspname::pg_catalog.text, r.rolsuper FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
         JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner \
         WHERE e.extname OPERATOR(pg_catalog.=) 'pgstattuple'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    match existing {
        Some((schema, true)) => Ok(Some(schema)),
        Some((_, false)) => Ok(None),
        None => {
            if super::conn::exec(conn, "CREATE EXTENSION IF NOT EXISTS pgstattuple SCHEMA repack").await.is_err() {
                return Ok(None);
            }
            super::service_extensions::mark(conn, "pgstattuple").await?;
            Ok(Some("repack".to_string()))
        }
    }
}

/// Why this table must be skipped, if it must: what it or its indexes depend on that a
/// non-superuser owns.
pub async fn table(conn: &mut PgConnection, t: &Table) -> Result<Option<String>, OpError> {
    let tenant_code: Vec<String> = sqlx::query_scalar(
        "WITH objs AS ( \
           SELECT $1::pg_catalog.oid AS oid \
           UNION ALL SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid \
         ), deps AS ( \
           SELECT DISTINCT d.refclassid, d.refobjid FROM pg_catalog.pg_depend d \
           JOIN objs o ON d.objid OPERATOR(pg_catalog.=) o.oid \
           WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
         ), owned AS ( \
           SELECT d.refclassid, d.refobjid, CASE \
             WHEN d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass \
               THEN (SELECT x.proowner FROM pg_catalog.pg_proc x WHERE x.oid OPERATOR(pg_catalog.=) d.refobjid) \
             WHEN d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass \
               THEN (SELECT x.oprowner FROM pg_catalog.pg_operator x WHERE x.oid OPERATOR(pg_catalog.=) d.refobjid) \
             WHEN d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass \
               THEN (SELECT x.typowner FROM pg_catalog.pg_type x WHERE x.oid OPERATOR(pg_catalog.=) d.refobjid) \
             WHEN d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_opclass'::pg_catalog.regclass \
               THEN (SELECT x.opcowner FROM pg_catalog.pg_opclass x WHERE x.oid OPERATOR(pg_catalog.=) d.refobjid) \
             WHEN d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_opfamily'::pg_catalog.regclass \
               THEN (SELECT x.opfowner FROM pg_catalog.pg_opfamily x WHERE x.oid OPERATOR(pg_catalog.=) d.refobjid) \
             WHEN d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_collation'::pg_catalog.regclass \
               THEN (SELECT x.collowner FROM pg_catalog.pg_collation x WHERE x.oid OPERATOR(pg_catalog.=) d.refobjid) \
           END AS owner FROM deps d \
         ) \
         SELECT pg_catalog.pg_describe_object(o.refclassid, o.refobjid, 0) FROM owned o \
         JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) o.owner \
         WHERE NOT r.rolsuper ORDER BY 1 LIMIT 5",
    )
    .bind(i64::from(t.oid))
    .fetch_all(&mut *conn)
    .await?;
    if tenant_code.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "depends on tenant-defined {} (pg_repack would run it with the service's rights; VACUUM FULL or REINDEX as \
         the owner instead)",
        tenant_code.join(", ")
    )))
}
