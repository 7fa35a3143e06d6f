//! Maintenance runs: VACUUM / ANALYZE / REINDEX CONCURRENTLY per table, and pg_repack with
//! prechecks ([`super::repack`]). Every table gets log lines with its figures before and
//! after; a table that fails a precheck is skipped with the reason, not the whole run.
//!
//! Everything that can execute tenant code (VACUUM and ANALYZE evaluate index expressions,
//! REINDEX rebuilds them) runs as the database's admin role, never as the service.

use std::time::Duration;

use dbaas_client::{CreateMaintenance, MaintenanceKind};
use sqlx::PgConnection;

use super::conn::{exec, InstanceRow, Target};
use super::record::{self, DatabaseRow};
use crate::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_store::naming::PgQuote;

pub(super) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Table {
    pub oid: u32,
    pub schema: String,
    pub name: String,
}

impl Table {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema.pg_ident(), self.name.pg_ident())
    }
    pub fn label(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

pub(super) fn duration_opt(v: &Option<String>, default: Duration) -> Duration {
    v.as_deref().and_then(|s| dbaas_client::duration::parse_duration(s).ok()).unwrap_or(default)
}

pub(super) fn mb(bytes: i64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_048_576.0)
}

struct Setup {
    db: DatabaseRow,
    inst: InstanceRow,
    target: Target,
    creds: Vec<record::CredentialRow>,
}

async fn setup(ctx: &OpContext) -> Result<Setup, OpError> {
    let (db, inst, target) = record::for_operation(&ctx.state.db, &ctx.state.key, ctx.op.target_id).await?;
    let creds = record::credentials(&ctx.state.db, db.id).await?;
    Ok(Setup { db, inst, target, creds })
}

pub async fn run(ctx: &OpContext, job: &super::jobs::Maintenance) -> Result<(), OpError> {
    let Setup { db, inst, target, creds } = setup(ctx).await?;
    let req = &job.request;
    if let Some(s) = &job.scheduled {
        ctx.log("info", &format!("scheduled run for the slot of {}", s.slot.to_rfc3339())).await;
    }
    let dbname = db.physical().database;
    let mut conn = super::tenant_session::connect(&target, &ctx.state.key, &db, &creds).await?;
    let tables = resolve_tables(&mut conn, &req.tables).await?;
    if tables.is_empty() {
        ctx.log("info", "no tables to work on").await;
        return Ok(());
    }
    let lock_timeout = duration_opt(&req.options.lock_timeout, DEFAULT_LOCK_TIMEOUT);
    exec(&mut conn, &format!("SET lock_timeout = '{}ms'", lock_timeout.as_millis())).await?;
    // Bounded: a runaway VACUUM or REINDEX must not hold a worker (and the tenant's share
    // of the engine) forever.
    let statement_timeout = statement_timeout(ctx, req);
    exec(&mut conn, &format!("SET statement_timeout = '{}ms'", statement_timeout.as_millis())).await?;
    match req.kind {
        MaintenanceKind::Vacuum | MaintenanceKind::Analyze => vacuum(ctx, &mut conn, &tables, req.kind).await,
        MaintenanceKind::Reindex => reindex(ctx, &mut conn, &tables).await,
        MaintenanceKind::Repack => {
            // pg_repack 1.4.8 needs superuser: the service's own session, guarded.
            let mut svc = target.connect(&dbname).await?;
            let result = super::repack::run(ctx, &mut svc, &tables, req, &inst, &dbname).await;
            // Whatever happened: nothing of pg_repack's may stay for the tenant's backups.
            let removed = super::service_extensions::remove(&mut svc, super::service_extensions::Scope::Marked).await;
            super::service_extensions::log(ctx, &removed).await;
            result.and(removed.map(|_| ()))
        }
    }
}

/// The request's statement timeout, or the service's default.
pub(super) fn statement_timeout(ctx: &OpContext, req: &CreateMaintenance) -> Duration {
    duration_opt(&req.options.statement_timeout, ctx.state.engine.maintenance_statement_timeout)
}

/// The named tables (all must exist: nothing is touched otherwise), or every table.
async fn resolve_tables(conn: &mut PgConnection, names: &[String]) -> Result<Vec<Table>, OpError> {
    let rows: Vec<(i64, String, String)> = if names.is_empty() {
        sqlx::query_as(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
             WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,m}'::pg_catalog.\"char\"[]) \
               AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema,repack}'::pg_catalog.name[]) \
               AND n.nspname OPERATOR(pg_catalog.!~) '^pg_' \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.objid OPERATOR(pg_catalog.=) c.oid \
                               AND d.deptype OPERATOR(pg_catalog.=) 'e') \
             ORDER BY 2, 3",
        )
        .fetch_all(&mut *conn)
        .await?
    } else {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let (schema, table) = name.split_once('.').unwrap_or(("public", name));
            let row: Option<(i64, String, String)> = sqlx::query_as(
                "SELECT c.oid::int8, n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                 WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2 \
                   AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,m}'::pg_catalog.\"char\"[])",
            )
            .bind(schema)
            .bind(table)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(r) => found.push(r),
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(OpError::permanent(
                "unknown_table",
                format!("no such table: {} (nothing was changed)", missing.join(", ")),
            ));
        }
        found
    };
    Ok(rows.into_iter().map(|(oid, schema, name)| Table { oid: oid as u32, schema, name }).collect())
}

pub(super) async fn table_figures(conn: &mut PgConnection, t: &Table) -> Result<(i64, i64, i64), OpError> {
    let (dead, size, idx): (Option<i64>, i64, i64) = sqlx::query_as(
        "SELECT (SELECT s.n_dead_tup FROM pg_catalog.pg_stat_all_tables s WHERE s.relid OPERATOR(pg_catalog.=) $1::pg_catalog.oid), \
                pg_catalog.pg_total_relation_size($1::pg_catalog.oid), pg_catalog.pg_indexes_size($1::pg_catalog.oid)",
    )
    .bind(i64::from(t.oid))
    .fetch_one(&mut *conn)
    .await?;
    Ok((dead.unwrap_or(0), size, idx))
}

async fn vacuum(
    ctx: &OpContext,
    conn: &mut PgConnection,
    tables: &[Table],
    kind: MaintenanceKind,
) -> Result<(), OpError> {
    let mut failed = 0;
    for t in tables {
        ctx.step(&format!("{}: {}", t.label(), kind.as_str())).await;
        let (dead0, size0, _) = table_figures(conn, t).await?;
        let sql = match kind {
            MaintenanceKind::Analyze => format!("ANALYZE {}", t.qualified()),
            _ => format!("VACUUM (ANALYZE) {}", t.qualified()),
        };
        match exec(conn, &sql).await {
            Ok(()) => {
                let (dead1, size1, _) = table_figures(conn, t).await?;
                ctx.log(
                    "info",
                    &format!("{}: dead tuples {dead0} -> {dead1}, size {} -> {}", t.label(), mb(size0), mb(size1)),
                )
                .await;
            }
            Err(e) if !e.retryable || e.code == "55P03" => {
                failed += 1;
                ctx.log("error", &format!("{}: skipped: {} ({})", t.label(), e.message, e.code)).await;
            }
            Err(e) => return Err(e),
        }
    }
    finish(failed, tables.len())
}

async fn reindex(ctx: &OpContext, conn: &mut PgConnection, tables: &[Table]) -> Result<(), OpError> {
    let mut failed = 0;
    for t in tables {
        ctx.step(&format!("{}: reindex concurrently", t.label())).await;
        let (_, _, idx0) = table_figures(conn, t).await?;
        match exec(conn, &format!("REINDEX TABLE CONCURRENTLY {}", t.qualified())).await {
            Ok(()) => {
                let (_, _, idx1) = table_figures(conn, t).await?;
                ctx.log("info", &format!("{}: indexes {} -> {}", t.label(), mb(idx0), mb(idx1))).await;
            }
            Err(e) if !e.retryable || e.code == "55P03" => {
                failed += 1;
                ctx.log("error", &format!("{}: skipped: {} ({})", t.label(), e.message, e.code)).await;
            }
            Err(e) => return Err(e),
        }
    }
    finish(failed, tables.len())
}

fn finish(failed: usize, total: usize) -> Result<(), OpError> {
    if failed > 0 && failed == total {
        Err(OpError::permanent(
            "all_tables_failed",
            format!("none of the {total} table(s) could be processed; see the log"),
        ))
    } else {
        Ok(())
    }
}

/// After a cancelled or failed attempt: remove pg_repack leftovers.
pub async fn cleanup(ctx: &OpContext, req: &CreateMaintenance) -> Result<(), OpError> {
    if req.kind != MaintenanceKind::Repack {
        return Ok(());
    }
    let Setup { db, target, .. } = setup(ctx).await?;
    let dbname = db.physical().database;
    let mut svc = target.connect(&dbname).await?;
    super::repack::remove_leftovers(ctx, &mut svc, &dbname).await
}
