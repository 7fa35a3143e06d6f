//! Password rotation and leases (temporary logins) on the instance. Every role touched must
//! carry the service's marker for its credential record ([`super::ownership`]).

use dbaas_client::Access;
use uuid::Uuid;

use super::conn::{drop_role_everywhere, exec, Locked};
use super::ownership::{self, Ownership};
use super::record;
use crate::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_store::naming::{Marker, PgQuote};

async fn load(
    ctx: &OpContext,
    credential_id: Uuid,
) -> Result<(record::DatabaseRow, super::Target, record::CredentialRow), OpError> {
    let (db, _, target) = record::for_operation(&ctx.state.db, &ctx.state.key, ctx.op.target_id).await?;
    let cred = record::credential(&ctx.state.db, credential_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the credential record is gone"))?;
    Ok((db, target, cred))
}

/// Applies the pending password; the record swaps it in when the operation succeeds.
pub async fn rotate(ctx: &OpContext, credential_id: Uuid) -> Result<(), OpError> {
    let (db, target, cred) = load(ctx, credential_id).await?;
    let Some(pending) = &cred.pending_password_enc else {
        ctx.log("info", "no rotation pending (already applied)").await;
        // An earlier attempt may have died between the record and the proxy.
        return ctx.state.sync_proxy(db.instance_id).await;
    };
    // Derived, not random: the routing proxy's auth file holds the same verifier.
    let verifier = ctx.state.key.scram_verifier(&ctx.state.key.decrypt(pending, &cred.context())?, &cred.context());
    let mut locked = Locked::database(&target, &db.physical().database).await?;
    ctx.step(&format!("setting a new password on {}", cred.role_name)).await;
    match ownership::role(&mut locked.conn, &cred.role_name, Marker::Role(cred.id)).await? {
        Ownership::Absent => {
            return Err(OpError::permanent(
                "role_missing",
                format!("role {} does not exist on the instance (drift); re-apply the database first", cred.role_name),
            ))
        }
        Ownership::Foreign(why) => return Err(ownership::conflict(&[format!("role {} ({why})", cred.role_name)])),
        Ownership::Ours | Ownership::OursUnmarked => {}
    }
    locked.roles_lock().await?;
    exec(
        &mut locked.conn,
        &format!("ALTER ROLE {} WITH PASSWORD {}", cred.role_name.pg_ident(), verifier.pg_literal()),
    )
    .await?;
    locked.roles_unlock().await?;
    drop(locked);
    // The instance has the new password: recorded now (not only when the operation ends) so
    // the routing proxy, rebuilt from the record, gets the same verifier at once.
    sqlx::query(
        "UPDATE credentials SET password_enc = pending_password_enc, pending_password_enc = NULL, \
         rotated_at = now() WHERE id = $1 AND pending_password_enc IS NOT NULL",
    )
    .bind(cred.id)
    .execute(&ctx.state.db)
    .await?;
    ctx.state.sync_proxy(db.instance_id).await
}

pub async fn create_lease(ctx: &OpContext, credential_id: Uuid) -> Result<(), OpError> {
    let (db, target, cred) = load(ctx, credential_id).await?;
    let names = db.physical();
    let access = cred.access();
    let parent = names.role(access);
    let creds = record::credentials(&ctx.state.db, db.id).await?;
    let parent_cred = super::provision::static_credential(&creds, access)?;
    let until = cred.expires_at.ok_or_else(|| OpError::permanent("bad_params", "lease without expiry"))?.to_rfc3339();
    let verifier =
        ctx.state.key.scram_verifier(&ctx.state.key.decrypt(&cred.password_enc, &cred.context())?, &cred.context());
    let mut locked = Locked::database(&target, &names.database).await?;
    ctx.step(&format!("creating login {} (member of {parent}, valid until {until})", cred.role_name)).await;
    // Membership is only ever granted in our own role, to our own login.
    if !ownership::role(&mut locked.conn, &parent, Marker::Role(parent_cred.id)).await?.is_ours() {
        return Err(ownership::conflict(&[format!("role {parent} (missing or not the service's)")]));
    }
    locked.roles_lock().await?;
    let role = cred.role_name.pg_ident();
    match ownership::role(&mut locked.conn, &cred.role_name, Marker::Role(cred.id)).await? {
        Ownership::Ours | Ownership::OursUnmarked => {
            exec(
                &mut locked.conn,
                &format!(
                    "ALTER ROLE {role} WITH LOGIN PASSWORD {} VALID UNTIL {}",
                    verifier.pg_literal(),
                    until.pg_literal()
                ),
            )
            .await?;
        }
        Ownership::Absent => {
            exec(
                &mut locked.conn,
                &format!(
                    "CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
                     INHERIT PASSWORD {} VALID UNTIL {} IN ROLE {}; COMMENT ON ROLE {role} IS {}",
                    verifier.pg_literal(),
                    until.pg_literal(),
                    parent.pg_ident(),
                    Marker::Role(cred.id).text().pg_literal()
                ),
            )
            .await?;
        }
        Ownership::Foreign(why) => {
            locked.roles_unlock().await?;
            return Err(ownership::conflict(&[format!("role {} ({why})", cred.role_name)]));
        }
    }
    if access == Access::Admin {
        // What the lease creates is owned by the admin role, so grants outlive the lease.
        exec(&mut locked.conn, &format!("ALTER ROLE {role} SET role = {}", parent.pg_literal())).await?;
    }
    locked.roles_unlock().await?;
    drop(locked);
    ctx.state.sync_proxy(db.instance_id).await
}

pub async fn revoke_lease(ctx: &OpContext, credential_id: Uuid) -> Result<(), OpError> {
    let (db, target, cred) = load(ctx, credential_id).await?;
    let names = db.physical();
    // Only role DDL (under the roles lock): an expired login goes on time even while a long
    // job (a delete waiting out its grace period) holds the database's lock.
    // First out of the routing proxy's auth file (the lease is `revoking`, which the proxy
    // no longer lists), then no new login on the server, then its sessions and the role: a
    // client already past the proxy finds its pooled server connection gone and cannot get
    // another.
    ctx.state.sync_proxy(db.instance_id).await?;
    let mut locked = Locked::instance(&target).await?;
    ctx.step(&format!("revoking login {}", cred.role_name)).await;
    locked.roles_lock().await?;
    if ownership::role(&mut locked.conn, &cred.role_name, Marker::Role(cred.id)).await?.is_ours() {
        exec(&mut locked.conn, &format!("ALTER ROLE {} NOLOGIN", cred.role_name.pg_ident())).await?;
    }
    let admin = names.role(Access::Admin);
    for line in
        drop_role_everywhere(&target, &mut locked.conn, &cred.role_name, Marker::Role(cred.id), Some(&admin)).await?
    {
        ctx.log("info", &line).await;
    }
    locked.roles_unlock().await?;
    Ok(())
}
