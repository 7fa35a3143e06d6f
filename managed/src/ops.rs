//! The steps of managed-instance operations on the host: provision, settings; the typed
//! operations themselves are in [`super::jobs`].
//! Every step checks the host before it acts, so any attempt can be repeated.

use dbaas_domain::catalog::conn::InstanceTarget;
use std::time::{Duration, Instant};

use dbaas_client::Settings;
use sqlx::PgConnection;

use super::node::Node;
use super::server::{check_ready, load, start_patiently, write_config};
use super::SERVICE_ADMIN;
use dbaas_crypto::scram_sha256_verifier;
use dbaas_domain::catalog::conn::{InstanceRow, MAINTENANCE_DB};
use dbaas_domain::catalog::record::load_instance;
use dbaas_domain::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_hosts::executor::{Command, Executor};
use dbaas_store::naming::PgQuote;

/// After a provisioning that will not be retried: nothing stays on the host.
pub async fn cleanup_failed_provision(ctx: &OpContext) -> Result<(), OpError> {
    let (_, node) = load(ctx).await?;
    ctx.log("info", &format!("removing what provisioning made: {}", node.dir)).await;
    node.remove().await?;
    Ok(())
}

/// A new instance restored from another's repository instead of `initdb`: the source and how
/// far to recover.
pub type Seed<'a> = (uuid::Uuid, &'a dbaas_client::RecoveryTarget);

pub(crate) async fn provision(
    ctx: &OpContext,
    inst: &InstanceRow,
    node: &Node,
    seed: Option<Seed<'_>>,
) -> Result<(), OpError> {
    let data = node.data();
    let done_marker = format!("{}/initdb.done", node.dir);

    ctx.step(&format!("data directory {}", node.dir)).await;
    node.sys("/bin/mkdir", &["-p", "-m", "0700", &node.dir]).await?;
    node.sys("/bin/mkdir", &["-p", "-m", "0700", &node.run_dir()]).await?;

    if let Some((source, to)) = seed {
        crate::pitr::instance_restore::seed(ctx, node, source, to).await?;
    } else if node.exists(&done_marker).await? {
        ctx.log("info", "initdb: already done").await;
    } else {
        if node.exists(&data).await? {
            // An initdb cut short leaves a partial cluster: start that step again.
            ctx.log("info", "initdb: removing the partial data directory of an interrupted attempt").await;
            node.sys("/bin/rm", &["-rf", "--one-file-system", &data]).await?;
        }
        ctx.step("initdb (scram-sha-256, data checksums)").await;
        node.pg(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--data-checksums",
            ],
        )
        .await?;
        node.sys("/usr/bin/touch", &[&done_marker]).await?;
    }

    ctx.step("configuration: dbaas.conf include and pg_hba.conf (TLS + SCRAM only from the network)").await;
    let archiving = crate::pitr::ops::prepare(ctx, inst, node).await?;
    write_config(node, &inst.settings.0, archiving.as_deref()).await?;

    ctx.step("TLS certificate").await;
    let ca = super::certs::ensure(ctx, node, inst).await?;
    sqlx::query("UPDATE instances SET ca_cert = $2 WHERE id = $1")
        .bind(inst.id)
        .bind(&ca)
        .execute(&ctx.state.db)
        .await?;

    ctx.step("starting the server").await;
    start_patiently(ctx, node).await?;
    if let Some((_, to)) = seed {
        crate::pitr::instance_restore::finish_seed(ctx, node, to).await?;
    }

    ctx.step(&format!("service admin role {SERVICE_ADMIN}")).await;
    let password = ctx
        .state
        .key
        .decrypt(&inst.admin_password_enc, &format!("instance:{}", inst.id))
        .map_err(|e| OpError::permanent("secret", e.to_string()))?;
    // Why SUPERUSER and not CREATEDB + CREATEROLE: pg_repack 1.4.8 (Debian's) checks for
    // superuser inside its C functions (repack_apply, repack_swap, …) and refuses to run
    // otherwise, and platform admins may allow untrusted extensions. What keeps tenants from
    // borrowing these rights: every session pins search_path, everything inside a tenant's
    // database runs as that database's admin role (catalog::tenant_session), and pg_repack
    // runs only where catalog::repack_guard finds no tenant code on its path.
    // Tenants never need the maintenance databases: CONNECT is revoked from PUBLIC there.
    let sql = format!(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{admin}') THEN \
         CREATE ROLE {ident} LOGIN SUPERUSER; END IF; END$$;\n\
         ALTER ROLE {ident} WITH LOGIN SUPERUSER PASSWORD {verifier};\n\
         REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;\n\
         REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;\n",
        admin = SERVICE_ADMIN,
        ident = SERVICE_ADMIN.pg_ident(),
        verifier = scram_sha256_verifier(&password).pg_literal(),
    );
    let port = node.port.to_string();
    let run = node.run_dir();
    let psql_args = [
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        &run,
        "-p",
        &port,
        "-U",
        "postgres",
        "-d",
        MAINTENANCE_DB,
        "-f",
        "-",
    ];
    node.exec.run(&Command::new(&format!("{}/psql", node.bin), &psql_args)?.as_postgres().stdin(sql)).await?;

    if archiving.is_some() {
        crate::pitr::ops::stanza(ctx, inst, node).await?;
    }

    ctx.step("register: connecting as the service over TLS (verify-full)").await;
    let fresh = load_instance(&ctx.state.db, inst.id).await?.ok_or_else(|| OpError::permanent("not_found", "gone"))?;
    let mut conn = fresh.target(&ctx.state.key)?.connect(MAINTENANCE_DB).await?;
    let version: String =
        sqlx::query_scalar("SELECT pg_catalog.current_setting('server_version')").fetch_one(&mut conn).await?;
    let elapsed = (chrono::Utc::now() - ctx.op.created_at).num_milliseconds();
    sqlx::query(
        "UPDATE instances SET server_version = $2, ready_at = now(), \
         managed = jsonb_set(coalesce(managed, '{}'), '{ready_in_ms}', to_jsonb($3::bigint)) WHERE id = $1",
    )
    .bind(inst.id)
    .bind(&version)
    .bind(elapsed)
    .execute(&ctx.state.db)
    .await?;
    ctx.log("info", &format!("ready: PostgreSQL {version} on port {}, {elapsed} ms after the request", node.port))
        .await;
    Ok(())
}

/// Writes the new settings, reloads, and restarts only when a changed parameter needs it.
pub(super) async fn update_settings(
    ctx: &OpContext,
    inst: &InstanceRow,
    node: &Node,
    new: &Settings,
) -> Result<(), OpError> {
    let old = &inst.settings.0;
    let changed: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .collect();
    ctx.log("info", &format!("changed: {}", if changed.is_empty() { "nothing".into() } else { changed.join(", ") }))
        .await;

    ctx.step("writing dbaas.conf").await;
    let archiving = crate::pitr::ops::lines_if_archiving(ctx, inst, node).await?;
    write_config(node, new, archiving.as_deref()).await?;

    ctx.step("reloading the configuration").await;
    let target = inst.target(&ctx.state.key)?;
    let mut conn = target.connect(MAINTENANCE_DB).await?;
    let before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT pg_catalog.pg_conf_load_time()").fetch_one(&mut conn).await?;
    sqlx::query("SELECT pg_catalog.pg_reload_conf()").execute(&mut conn).await?;
    drop(conn);
    let mut conn = wait_reloaded(&target, before).await?;

    // A row with neither file nor name is a restart-only setting no file sets any more
    // ("cannot be changed without restarting the server"): pending, not rejected, and
    // `pending_restart` below restarts for it.
    let errors: Vec<(String, String)> = sqlx::query_as(
        "SELECT coalesce(name, sourcefile), error FROM pg_catalog.pg_file_settings \
         WHERE error IS NOT NULL AND error <> 'setting could not be applied' \
         AND (name IS NOT NULL OR sourcefile IS NOT NULL)",
    )
    .fetch_all(&mut conn)
    .await?;
    if !errors.is_empty() {
        // Put the running configuration back before failing, so the file never disagrees
        // with what the instance record says.
        write_config(node, old, archiving.as_deref()).await?;
        sqlx::query("SELECT pg_catalog.pg_reload_conf()").execute(&mut conn).await?;
        let list: Vec<String> = errors.into_iter().map(|(n, e)| format!("{n}: {e}")).collect();
        return Err(OpError::permanent(
            "invalid_setting",
            format!("the server rejected the settings ({}); previous settings restored", list.join("; ")),
        ));
    }
    let pending: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pg_catalog.pg_settings WHERE pending_restart ORDER BY name")
            .fetch_all(&mut conn)
            .await?;
    drop(conn);
    if pending.is_empty() {
        ctx.log("info", "applied by reload, no restart needed").await;
        return Ok(());
    }
    ctx.step(&format!("restart needed for {}: restarting", pending.join(", "))).await;
    node.stop("fast").await?;
    if let Err(e) = start_patiently(ctx, node).await {
        // The new settings keep the server from starting (memory it cannot get, a bad
        // combination): put the previous ones back and start with them, rather than leave the
        // instance down with a config every later start fails on.
        ctx.log("error", &format!("the server did not start with the new settings: {e}")).await;
        ctx.step("restoring the previous settings and starting again").await;
        write_config(node, old, archiving.as_deref()).await?;
        node.start().await?;
        check_ready(ctx, inst).await?;
        return Err(OpError::permanent(
            "start_failed",
            format!("the server did not start with the new settings ({e}); the previous settings were restored and it runs with them"),
        ));
    }
    check_ready(ctx, inst).await?;
    ctx.log("info", &format!("restarted to apply {}", pending.join(", "))).await;
    Ok(())
}

/// A new session once the server has loaded the configuration again (reload is a signal:
/// it lands shortly after `pg_reload_conf()` returns).
async fn wait_reloaded(
    target: &dbaas_domain::catalog::Target,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<PgConnection, OpError> {
    let start = Instant::now();
    loop {
        let mut conn = target.connect(MAINTENANCE_DB).await?;
        let now: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT pg_catalog.pg_conf_load_time()").fetch_one(&mut conn).await?;
        if now > before {
            return Ok(conn);
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(OpError::retryable(
                "reload_timeout",
                "the server did not reload its configuration within 10 s",
            ));
        }
        drop(conn);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
