//! Safe delete: revoke CONNECT, let sessions finish (reporting who is connected), terminate
//! the rest, drop the database, then drop its roles. Each step checks first, so a delete
//! interrupted half-way finishes on retry.

use std::time::{Duration, Instant};

use dbaas_client::Access;

use super::conn::{drop_role_everywhere, exec, Locked};
use super::ownership::{self, Ownership};
use super::record;
use crate::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_store::naming::{Marker, PgQuote};

pub async fn run(ctx: &OpContext, grace: Option<Duration>) -> Result<(), OpError> {
    let state = &ctx.state;
    let (db, inst, target) = record::for_operation(&state.db, &state.key, ctx.op.target_id).await?;
    let names = db.physical();
    let dbi = names.database.pg_ident();

    ctx.step(&format!("connecting to instance {}", inst.name)).await;
    let mut locked = Locked::database(&target, &names.database).await?;
    let creds = record::credentials(&state.db, db.id).await?;
    let claim = super::provision::claim(&db, &creds)?;
    let (admin_role, admin_marker) = (&claim.roles[0].0, claim.roles[0].1);
    let ownership =
        ownership::database(&mut locked.conn, &names.database, Marker::Database(db.id), admin_role, admin_marker)
            .await?;

    if let Ownership::Foreign(why) = &ownership {
        // Not ours (created by hand, or a name clash a failed provisioning reported): the
        // record goes, the database stays exactly as it is.
        ctx.log("warn", &format!("database {} is not ours ({why}); left untouched", names.database)).await;
    } else if ownership.is_ours() {
        // The routing proxy stops routing to it (a `deleting` database is not listed).
        state.sync_proxy(db.instance_id).await?;
        ctx.step("step 1/4: revoking CONNECT").await;
        ctx.step("step 2/4: waiting for sessions to end").await;
        drain(ctx, &mut locked.conn, &names, grace.unwrap_or(state.engine.delete_grace)).await?;

        ctx.step("step 3/4: dropping the database").await;
        exec(&mut locked.conn, &format!("DROP DATABASE IF EXISTS {dbi} WITH (FORCE)")).await?;
        ctx.log("info", &format!("dropped database {}", names.database)).await;
        super::restore::drop_copies(&mut locked.conn, &names, db.id).await?;
    } else {
        ctx.log("info", &format!("database {} is already gone", names.database)).await;
    }

    ctx.step("step 4/4: dropping roles").await;
    locked.roles_lock().await?;
    // Leases first: they are members of the access roles; then read, write, admin.
    let mut roles: Vec<(String, Marker)> = creds
        .iter()
        .filter(|c| c.kind == dbaas_client::CredentialKind::Lease)
        .map(|c| (c.role_name.clone(), Marker::Role(c.id)))
        .collect();
    // The backup login is member of no access role: any order.
    roles.push((super::backup_login::name(&names), super::backup_login::marker(db.id)));
    roles.extend(claim.roles.iter().rev().cloned());
    for (role, marker) in roles {
        for line in drop_role_everywhere(&target, &mut locked.conn, &role, marker, None).await? {
            ctx.log("info", &line).await;
        }
    }
    locked.roles_unlock().await?;
    Ok(())
}

/// Revokes CONNECT on the database from everyone, waits up to `grace` for its sessions to
/// end (naming who is connected), then terminates the rest. Used before a drop and before an
/// in-place restore swaps databases.
pub async fn drain(
    ctx: &OpContext,
    conn: &mut sqlx::PgConnection,
    names: &dbaas_store::naming::PhysicalNames,
    grace: Duration,
) -> Result<(), OpError> {
    let dbi = names.database.pg_ident();
    let roles: Vec<String> = Access::ALL.iter().map(|a| names.role(*a)).collect();
    let mut grantees = vec!["PUBLIC".to_string()];
    for r in &roles {
        if super::conn::role_exists(&mut *conn, r).await? {
            grantees.push(r.pg_ident());
        }
    }
    exec(&mut *conn, &format!("REVOKE CONNECT ON DATABASE {dbi} FROM {}", grantees.join(", "))).await?;
    let deadline = Instant::now() + grace;
    let mut reported = false;
    loop {
        let sessions: Vec<(String, String)> = sqlx::query_as(
            "SELECT coalesce(usename::text, ''), coalesce(application_name, '') FROM pg_catalog.pg_stat_activity \
             WHERE datname OPERATOR(pg_catalog.=) $1 AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
        )
        .bind(&names.database)
        .fetch_all(&mut *conn)
        .await?;
        if sessions.is_empty() {
            return Ok(());
        }
        if !reported {
            let mut apps: Vec<String> = sessions
                .iter()
                .map(|(u, a)| format!("{u} ({})", if a.is_empty() { "no application_name" } else { a }))
                .collect();
            apps.sort();
            apps.dedup();
            ctx.log(
                "warn",
                &format!("{} open session(s): {}; waiting up to {grace:?}", sessions.len(), apps.join(", ")),
            )
            .await;
            reported = true;
        }
        if Instant::now() >= deadline {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity \
                 WHERE datname OPERATOR(pg_catalog.=) $1 AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
            )
            .bind(&names.database)
            .fetch_one(&mut *conn)
            .await?;
            ctx.log("warn", &format!("terminated {n} session(s) after the grace period")).await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
