//! pg_repack runs. pg_repack 1.4.8 (Debian's) checks for superuser inside its C functions, so
//! it runs as the service's own login; the guards of [`super::repack_guard`] refuse a
//! database, or skip a table, where that would let tenant-defined code run with those rights.

use std::process::Stdio;
use std::time::Duration;

use dbaas_client::CreateMaintenance;
use sqlx::PgConnection;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::conn::{exec, InstanceRow};
use super::libpq;
use super::maintenance::{duration_opt, mb, table_figures, Table, DEFAULT_LOCK_TIMEOUT};
use super::repack_guard;
use crate::operation::OpContext;
use dbaas_engine::OpError;

const DEFAULT_BLOAT_THRESHOLD: f64 = 20.0;
const DEFAULT_MAX_XACT_AGE: Duration = Duration::from_secs(300);

/// The pg_repack client next to the local PostgreSQL binaries (or `$DBAAS_PG_REPACK`).
fn repack_client() -> Result<std::path::PathBuf, OpError> {
    if let Ok(p) = std::env::var("DBAAS_PG_REPACK") {
        return Ok(p.into());
    }
    let bin =
        dbaas_hosts::pgcluster::find_bin_dir().map_err(|e| OpError::permanent("pg_repack_missing", e.to_string()))?;
    Ok(bin.join("pg_repack"))
}

async fn client_version(client: &std::path::Path) -> Result<String, OpError> {
    let out = tokio::process::Command::new(client).arg("--version").output().await.map_err(|e| {
        OpError::permanent(
            "pg_repack_missing",
            format!("the pg_repack client {} cannot run: {e} (install postgresql-<version>-repack)", client.display()),
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().nth(1).unwrap_or("").to_string())
}

/// Repacks the tables; `conn` is the service's own session in the database (pinned
/// `search_path`), used only for catalog reads and the extension.
pub async fn run(
    ctx: &OpContext,
    conn: &mut PgConnection,
    tables: &[Table],
    req: &CreateMaintenance,
    inst: &InstanceRow,
    dbname: &str,
) -> Result<(), OpError> {
    let o = &req.options;
    let client = repack_client()?;
    let client_ver = client_version(&client).await?;
    let ext: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT e.default_version, e.installed_version FROM pg_catalog.pg_available_extensions e \
         WHERE e.name OPERATOR(pg_catalog.=) 'pg_repack'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some((default_ver, installed_ver)) = ext else {
        return Err(OpError::permanent(
            "pg_repack_unavailable",
            format!("the pg_repack extension is not installed on instance {} (package postgresql-<version>-repack); repack is not possible there", inst.name),
        ));
    };
    let server_ver = installed_ver.clone().or(default_ver).unwrap_or_default();
    if server_ver != client_ver {
        return Err(OpError::permanent(
            "pg_repack_version_mismatch",
            format!("pg_repack client {client_ver} and server extension {server_ver} differ; they must match"),
        ));
    }
    // Before anything is created: would pg_repack's session resolve names to tenant code?
    if let Some(reason) = repack_guard::database(conn).await? {
        return Err(OpError::permanent(
            "repack_refused",
            format!("pg_repack is refused in {dbname}: {reason} (nothing was changed; VACUUM and REINDEX still work)"),
        ));
    }
    if installed_ver.is_none() {
        if let Some(reason) = repack_guard::foreign_repack_schema(conn).await? {
            return Err(OpError::permanent("repack_refused", format!("pg_repack is refused in {dbname}: {reason}")));
        }
        exec(conn, "CREATE EXTENSION IF NOT EXISTS pg_repack").await?;
        super::service_extensions::mark(conn, "pg_repack").await?;
        ctx.log("info", &format!("installed the pg_repack extension {server_ver} in {dbname}")).await;
    } else if let Some(reason) = repack_guard::foreign_repack_schema(conn).await? {
        return Err(OpError::permanent("repack_refused", format!("pg_repack is refused in {dbname}: {reason}")));
    }
    // pgstattuple gives a measured bloat figure (without it we estimate from dead tuples). It
    // goes into pg_repack's superuser-owned schema, never into one a tenant owns.
    let stattuple = repack_guard::pgstattuple_schema(conn).await?;
    let threshold = o.bloat_threshold_percent.unwrap_or(DEFAULT_BLOAT_THRESHOLD);
    let max_age = duration_opt(&o.max_transaction_age, DEFAULT_MAX_XACT_AGE);
    let wait = duration_opt(&o.lock_timeout, DEFAULT_LOCK_TIMEOUT);

    let (mut repacked, mut problems, mut failed) = (0usize, Vec::new(), 0usize);
    for t in tables {
        ctx.step(&format!("{}: prechecks", t.label())).await;
        let reason = match repack_guard::table(conn, t).await? {
            Some(r) => Some(r),
            None => precheck(conn, t, max_age).await?,
        };
        if let Some(reason) = reason {
            ctx.log("warn", &format!("{}: skipped: {reason}", t.label())).await;
            problems.push(format!("{}: {reason}", t.label()));
            continue;
        }
        let bloat = bloat_percent(conn, t, stattuple.as_deref()).await?;
        if bloat < threshold {
            ctx.log("info", &format!("{}: skipped: bloat {bloat:.1}% < threshold {threshold}%", t.label())).await;
            continue;
        }
        let (_, size0, idx0) = table_figures(conn, t).await?;
        if inst.kind == dbaas_client::InstanceKind::External {
            ctx.log(
                "warn",
                &format!(
                    "{}: free disk on an external instance cannot be checked; repack needs about {} free",
                    t.label(),
                    mb(2 * size0)
                ),
            )
            .await;
        }
        ctx.log(
            "info",
            &format!("{}: bloat {bloat:.1}%, size {} (indexes {}); repacking", t.label(), mb(size0), mb(idx0)),
        )
        .await;
        match run_pg_repack(ctx, req, &client, inst, dbname, t, wait).await {
            Ok(()) => {
                let (_, size1, idx1) = table_figures(conn, t).await?;
                let bloat1 = bloat_percent(conn, t, stattuple.as_deref()).await?;
                ctx.log(
                    "info",
                    &format!(
                        "{}: repacked, size {} -> {} (indexes {} -> {}), bloat {bloat:.1}% -> {bloat1:.1}%",
                        t.label(),
                        mb(size0),
                        mb(size1),
                        mb(idx0),
                        mb(idx1)
                    ),
                )
                .await;
                repacked += 1;
            }
            Err(e) => {
                failed += 1;
                ctx.log("error", &format!("{}: pg_repack failed: {}", t.label(), e.message)).await;
                remove_leftovers(ctx, conn, dbname).await?;
            }
        }
    }
    if repacked == 0 && (failed > 0 || !problems.is_empty()) {
        return Err(OpError::permanent(
            "nothing_repacked",
            format!(
                "no table could be repacked: {}",
                problems
                    .into_iter()
                    .chain((failed > 0).then(|| format!("{failed} pg_repack failure(s)")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    Ok(())
}

/// Why a table cannot be repacked safely now, if it cannot.
async fn precheck(conn: &mut PgConnection, t: &Table, max_age: Duration) -> Result<Option<String>, OpError> {
    let has_key: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid AND i.indisvalid AND i.indpred IS NULL \
           AND (i.indisprimary OR (i.indisunique AND NOT EXISTS ( \
                 SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = i.indrelid \
                   AND a.attnum = ANY (i.indkey) AND NOT a.attnotnull))))",
    )
    .bind(i64::from(t.oid))
    .fetch_one(&mut *conn)
    .await?;
    if !has_key {
        return Ok(Some("no primary key or NOT NULL unique index (pg_repack needs one)".into()));
    }
    let old: Option<(i32, i64)> = sqlx::query_as(
        "SELECT a.pid, extract(epoch FROM pg_catalog.now() - a.xact_start)::int8 FROM pg_catalog.pg_locks l \
         JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
         WHERE l.relation = $1::oid AND a.pid <> pg_catalog.pg_backend_pid() \
           AND a.xact_start < pg_catalog.now() - $2 * interval '1 second' ORDER BY a.xact_start LIMIT 1",
    )
    .bind(i64::from(t.oid))
    .bind(max_age.as_secs() as f64)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((pid, age)) = old {
        return Ok(Some(format!(
            "a transaction open for {age}s (pid {pid}) holds a lock on it (limit {}s); not waiting behind it",
            max_age.as_secs()
        )));
    }
    Ok(None)
}

async fn bloat_percent(conn: &mut PgConnection, t: &Table, stattuple: Option<&str>) -> Result<f64, OpError> {
    if let Some(schema) = stattuple {
        let r: Result<f64, _> = sqlx::query_scalar(&format!(
            "SELECT (s.approx_free_percent OPERATOR(pg_catalog.+) s.dead_tuple_percent)::pg_catalog.float8 \
             FROM {}.pgstattuple_approx($1::pg_catalog.oid::pg_catalog.regclass) s",
            dbaas_store::naming::PgQuote::pg_ident(schema)
        ))
        .bind(i64::from(t.oid))
        .fetch_one(&mut *conn)
        .await;
        if let Ok(v) = r {
            return Ok(v);
        }
    }
    let (live, dead): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT s.n_live_tup, s.n_dead_tup FROM pg_catalog.pg_stat_all_tables s \
             WHERE s.relid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
    )
    .bind(i64::from(t.oid))
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or((None, None));
    let (live, dead) = (live.unwrap_or(0) as f64, dead.unwrap_or(0) as f64);
    Ok(if live + dead > 0.0 { 100.0 * dead / (live + dead) } else { 0.0 })
}

/// The application_name our pg_repack sessions carry, so cleanup can find exactly them.
fn app_name(ctx: &OpContext) -> String {
    format!("dbaas-repack-{}", ctx.op.id.simple())
}

async fn run_pg_repack(
    ctx: &OpContext,
    req: &CreateMaintenance,
    client: &std::path::Path,
    inst: &InstanceRow,
    dbname: &str,
    t: &Table,
    wait: Duration,
) -> Result<(), OpError> {
    let jobs = req.options.jobs.unwrap_or(1);
    let kill_backends = req.options.kill_backends.unwrap_or(false);
    let password = ctx.state.key.decrypt(&inst.admin_password_enc, &format!("instance:{}", inst.id))?;
    // Arguments are passed as a vector, never through a shell; names were validated.
    // pg_repack sets its own path (pg_catalog, pg_temp, public) after connecting; the pinned
    // PGOPTIONS cover what runs before, and the guards cover `public`.
    let mut repack = libpq::command(
        client,
        inst.into(),
        libpq::Login { user: &inst.admin_user, password: &password },
        dbname,
        &app_name(ctx),
    )?;
    let cmd = &mut repack.cmd;
    cmd.arg("--dbname")
        .arg(dbname)
        .arg("--table")
        .arg(t.label())
        .arg("--wait-timeout")
        .arg(wait.as_secs().max(1).to_string())
        .arg("--jobs")
        .arg(jobs.to_string())
        .arg("--no-superuser-check")
        // Its progress goes to stderr (read below); nothing reads stdout.
        .stdout(Stdio::null());
    if !kill_backends {
        cmd.arg("--no-kill-backend");
    }
    let mut child = cmd.spawn().map_err(|e| OpError::permanent("pg_repack_missing", e.to_string()))?;
    let mut lines = Vec::new();
    let limit = super::maintenance::statement_timeout(ctx, req);
    let run = async {
        if let Some(err) = child.stderr.take() {
            let mut r = BufReader::new(err).lines();
            while let Ok(Some(line)) = r.next_line().await {
                ctx.log("info", &format!("pg_repack: {line}")).await;
                lines.push(line);
            }
        }
        child.wait().await
    };
    // pg_repack sets its own statement_timeout to 0: the bound is kept from here.
    let status = match tokio::time::timeout(limit, run).await {
        Ok(s) => s.map_err(|e| OpError::permanent("pg_repack_failed", e.to_string()))?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(OpError::permanent(
                "statement_timeout",
                format!("pg_repack ran longer than the statement timeout ({limit:?}) and was stopped"),
            ));
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(OpError::permanent(
            "pg_repack_failed",
            lines.last().cloned().unwrap_or_else(|| format!("pg_repack exited with {status}")),
        ))
    }
}

/// What an interrupted pg_repack leaves (its `repack` schema tables, the trigger on the
/// table) goes with the extension: drop it with CASCADE and create it again, after ending
/// our own pg_repack sessions so nothing holds locks.
pub async fn remove_leftovers(ctx: &OpContext, conn: &mut PgConnection, dbname: &str) -> Result<(), OpError> {
    let ours: i64 = sqlx::query_scalar(
        "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity \
         WHERE datname = $1 AND application_name = $2",
    )
    .bind(dbname)
    .bind(app_name(ctx))
    .fetch_one(&mut *conn)
    .await?;
    if ours > 0 {
        ctx.log("warn", &format!("terminated {ours} pg_repack session(s) of this operation")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'repack' AND c.relkind = 'r') \
              + (SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgname LIKE 'repack_trigger%')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let installed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_repack')")
            .fetch_one(&mut *conn)
            .await?;
    if installed && leftovers > 0 {
        let marked = super::service_extensions::MARK;
        let was_ours: bool = sqlx::query_scalar(
            "SELECT pg_catalog.obj_description(e.oid, 'pg_extension') IS NOT DISTINCT FROM $1 \
             FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_repack'",
        )
        .bind(marked)
        .fetch_one(&mut *conn)
        .await?;
        exec(conn, "DROP EXTENSION pg_repack CASCADE").await?;
        exec(conn, "CREATE EXTENSION pg_repack").await?;
        if was_ours {
            super::service_extensions::mark(conn, "pg_repack").await?;
        }
        ctx.log("warn", &format!("removed {leftovers} pg_repack leftover(s) (extension recreated)")).await;
    }
    Ok(())
}
