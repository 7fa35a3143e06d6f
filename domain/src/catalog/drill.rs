//! Drills (verifications): a backup restored into a scratch database `<physical>_verify`,
//! compared with its manifest, and dropped.
//!
//! A drill uses no credential of the database: it works the same for a database that still
//! exists and for one deleted with its final backup (the backup an auditor asks about). The
//! scratch database is owned by a scratch login of the same name, `<physical>_verify`, made
//! for this drill with a random password that is never stored; `pg_restore` runs as that
//! login, so whatever the dump holds runs with the rights of a role that owns one throwaway
//! database and nothing else. Policies in the dump may name the database's roles: where those
//! no longer exist (a deleted database), NOLOGIN stand-ins with the drill's marker take their
//! names until the drill ends. Only after `pg_restore` has finished does the scratch login get
//! `BYPASSRLS`, for the comparison alone (its reads run no tenant code; see
//! `super::backup_login`), so tables with forced row security are counted whole.
//!
//! Names are injective (physical names contain no `_`); everything the drill makes carries
//! the marker `dbaas:verify:<backup id>`, and only marked objects are dropped. Drills of one
//! database are serialised by an advisory lock, since they share the scratch names.

use crate::catalog::conn::InstanceTarget;
use dbaas_client::{Access, BackupManifest};
use sqlx::PgConnection;
use uuid::Uuid;

use super::backup_restore::{check_against, pg_restore_into, Check};
use super::backups::{open_store, Loaded};
use super::conn::{drop_role_everywhere, exec, role_exists, Locked, Target};
use crate::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_store::backups as rows;
use dbaas_store::naming::{Marker, PgQuote, PhysicalNames};

/// `<physical>_verify`: the scratch database and its login (databases and roles are separate
/// namespaces on an instance).
fn scratch(names: &PhysicalNames) -> String {
    format!("{}_verify", names.database)
}

fn marker(backup: Uuid) -> Marker {
    Marker::Drill(backup)
}

/// What a drill needs: the backup, its database's record (deleted or not), instance, store.
async fn load(ctx: &OpContext, backup_id: Uuid) -> Result<Loaded, OpError> {
    let s = &ctx.state;
    let backup = rows::backup(&s.db, backup_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the backup record is gone"))?;
    let db = dbaas_store::databases::load(&s.db, backup.database_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the database record is gone"))?;
    let inst = dbaas_store::databases::load_instance(&s.db, db.instance_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the instance record is gone"))?;
    let store_row = rows::store(&s.db, backup.store_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the backup store is gone"))?;
    let store = open_store(ctx, &store_row)?;
    Ok(Loaded { backup, db, inst, store, lock_mode: None, password: String::new() })
}

/// Takes the database's drill lock on `maint` (released when the session ends).
async fn lock(maint: &mut PgConnection, names: &PhysicalNames) -> Result<(), OpError> {
    sqlx::query("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext($1))")
        .bind(format!("dbaas:verify:{}", names.database))
        .execute(&mut *maint)
        .await?;
    Ok(())
}

/// Drops what a drill of this database left: the scratch database (any drill's: they are
/// serialised), then this drill's roles (only those carrying `marker`).
async fn remove(target: &Target, maint: &mut PgConnection, names: &PhysicalNames) -> Result<(), OpError> {
    let dropped = drop_scratch_database(maint, names).await;
    let mut roles = vec![scratch(names)];
    roles.extend(Access::ALL.iter().map(|a| names.role(*a)));
    sqlx::query("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('dbaas:roles'))").execute(&mut *maint).await?;
    let mut result = Ok(());
    for role in roles {
        // Any drill's (drills of one database are serialised): one killed before it
        // cleaned up carries another backup's marker.
        let comment: Option<Option<String>> = sqlx::query_scalar(
            "SELECT pg_catalog.shobj_description(r.oid, 'pg_authid') FROM pg_catalog.pg_roles r \
             WHERE r.rolname OPERATOR(pg_catalog.=) $1",
        )
        .bind(&role)
        .fetch_optional(&mut *maint)
        .await?;
        let Some(Some(c)) = comment else { continue };
        let Some(id) = c.strip_prefix("dbaas:verify:").and_then(|id| id.parse::<Uuid>().ok()) else { continue };
        if let Err(e) = drop_role_everywhere(target, maint, &role, Marker::Drill(id), None).await {
            result = Err(e);
            break;
        }
    }
    sqlx::query("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('dbaas:roles'))")
        .execute(&mut *maint)
        .await?;
    dropped.and(result)
}

/// Drops the scratch database when it is a drill's: its comment is a drill's marker, or its
/// owner is a drill's scratch login (the scratch login owns it, so tenant code in the dump
/// can change its comment, but no role can change its own comment).
async fn drop_scratch_database(maint: &mut PgConnection, names: &PhysicalNames) -> Result<(), OpError> {
    let db = scratch(names);
    let found: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT pg_catalog.shobj_description(d.oid, 'pg_database'), \
                pg_catalog.shobj_description(d.datdba, 'pg_authid') \
         FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) $1",
    )
    .bind(&db)
    .fetch_optional(&mut *maint)
    .await?;
    let Some((comment, owner_comment)) = found else { return Ok(()) };
    let drill = |c: &Option<String>| c.as_deref().is_some_and(|c| c.starts_with("dbaas:verify:"));
    if drill(&comment) || drill(&owner_comment) {
        exec(maint, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.pg_ident())).await
    } else {
        Err(super::ownership::conflict(&[format!("database {db} (not a dbaas verification database)")]))
    }
}

pub async fn cleanup(ctx: &OpContext, backup_id: Uuid) -> Result<(), OpError> {
    let l = load(ctx, backup_id).await?;
    let names = l.db.physical();
    let target = l.inst.target(&ctx.state.key)?;
    let mut locked = Locked::instance(&target).await?;
    lock(&mut locked.conn, &names).await?;
    remove(&target, &mut locked.conn, &names).await
}

/// Creates the scratch login (random password, returned) and the stand-ins for the
/// database's roles that do not exist, all marked; then the scratch database it owns.
async fn prepare(maint: &mut PgConnection, names: &PhysicalNames, m: Marker) -> Result<String, OpError> {
    let login = scratch(names);
    let password = crate::crypto::generate_password();
    let verifier = crate::crypto::scram_sha256_verifier(&password);
    let mark = |role: &str| format!("COMMENT ON ROLE {} IS {}", role.pg_ident(), m.text().pg_literal());
    sqlx::query("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('dbaas:roles'))").execute(&mut *maint).await?;
    let made = async {
        if role_exists(maint, &login).await? {
            return Err(super::ownership::conflict(&[format!("role {login} (not this drill's)")]));
        }
        exec(
            maint,
            &format!(
                "CREATE ROLE {} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
                 CONNECTION LIMIT 4 PASSWORD {}",
                login.pg_ident(),
                verifier.pg_literal()
            ),
        )
        .await?;
        exec(maint, &mark(&login)).await?;
        for access in Access::ALL {
            let role = names.role(access);
            if !role_exists(maint, &role).await? {
                exec(maint, &format!("CREATE ROLE {} NOLOGIN", role.pg_ident())).await?;
                exec(maint, &mark(&role)).await?;
            }
        }
        Ok(())
    }
    .await;
    sqlx::query("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('dbaas:roles'))")
        .execute(&mut *maint)
        .await?;
    made?;
    super::ownership::create_marked_database(maint, &scratch(names), &login, &m.text()).await?;
    Ok(password)
}

pub async fn verify(ctx: &OpContext, backup_id: Uuid) -> Result<(), OpError> {
    let l = load(ctx, backup_id).await?;
    let manifest: BackupManifest = l
        .backup
        .manifest
        .as_ref()
        .map(|m| m.0.clone())
        .ok_or_else(|| OpError::permanent("not_verifiable", "the backup has no manifest (it did not finish)"))?;
    let names = l.db.physical();
    let target = l.inst.target(&ctx.state.key)?;
    let db = scratch(&names);
    let m = marker(backup_id);
    ctx.step(&format!("scratch database {db} and its login")).await;
    let mut locked = Locked::instance(&target).await?;
    lock(&mut locked.conn, &names).await?;
    remove(&target, &mut locked.conn, &names).await?;
    let result = async {
        let password = prepare(&mut locked.conn, &names, m).await?;
        let ms = pg_restore_into(ctx, &l.backup, &l.store, &l.inst, (&db, &password), &db).await?;
        // Restored: only now may the scratch login read past row security, to count. What the
        // restore ran (as it) may have made another role a member of it: revoked first, and
        // any session of it ended, so only the count below acts with that attribute.
        sqlx::query("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('dbaas:roles'))")
            .execute(&mut locked.conn)
            .await?;
        super::conn::revoke_members(&mut locked.conn, &db).await?;
        super::conn::terminate_role_sessions(&mut locked.conn, &db).await?;
        exec(&mut locked.conn, &format!("ALTER ROLE {} BYPASSRLS", db.pg_ident())).await?;
        sqlx::query("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('dbaas:roles'))")
            .execute(&mut locked.conn)
            .await?;
        check_against(ctx, &manifest, &l.inst, (&db, &password), &db, Check::Full).await?;
        Ok::<i64, OpError>(ms)
    }
    .await;
    remove(&target, &mut locked.conn, &names).await?;
    let (status, message, restore_ms) = match &result {
        Ok(ms) => {
            let summed = manifest.tables.iter().filter(|t| t.checksum.is_some()).count();
            let msg = format!(
                "{} tables: row counts and {summed} content checksums match the manifest",
                manifest.tables.len()
            );
            ("passed", msg, Some(*ms))
        }
        Err(e) => ("failed", e.message.clone(), None),
    };
    sqlx::query(
        "UPDATE backups SET verify_status = $2, verify_message = $3, verified_at = now(), \
         restore_ms = coalesce($4, restore_ms) WHERE id = $1",
    )
    .bind(backup_id)
    .bind(status)
    .bind(&message)
    .bind(restore_ms)
    .execute(&ctx.state.db)
    .await?;
    ctx.log(if result.is_ok() { "info" } else { "error" }, &format!("verification {status}: {message}")).await;
    result.map(|_| ())
}
