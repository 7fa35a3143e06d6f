//! Provisioning (and re-applying) a database with its three roles, in ordered phases:
//! roles → database → database-level privileges → schema and default privileges →
//! extensions. Each phase reads the catalog first and is safe to run again.

use dbaas_client::Access;
use sqlx::PgConnection;

use super::conn::{exec, role_exists, Locked};
use super::record;
use crate::naming::{PgQuote, PhysicalNames};
use crate::ops::runner::OpContext;
use crate::ops::OpError;

pub async fn run(ctx: &OpContext) -> Result<(), OpError> {
    let state = &ctx.state;
    let (db, inst, target) = record::for_operation(&state.db, &state.key, ctx.op.target_id).await?;
    let creds = record::credentials(&state.db, db.id).await?;
    let names = db.physical();

    ctx.step(&format!("connecting to instance {} ({}:{})", inst.name, inst.host, inst.port)).await;
    let mut locked = Locked::database(&target, &names.database).await?;
    let superuser: bool = sqlx::query_scalar("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user")
        .fetch_one(&mut locked.conn)
        .await?;

    // Phase 1: roles.
    ctx.step("phase 1/5: roles").await;
    locked.roles_lock().await?;
    for access in Access::ALL {
        let role = names.role(access);
        let cred = creds
            .iter()
            .find(|c| c.kind == "static" && c.access() == access)
            .ok_or_else(|| OpError::permanent("missing_credential", format!("no stored credential for {role}")))?;
        // A rotation in flight wins: its password is the one about to be recorded.
        let enc = cred.pending_password_enc.as_ref().unwrap_or(&cred.password_enc);
        let verifier = crate::crypto::scram_sha256_verifier(&state.key.decrypt(enc, &cred.context())?);
        if role_exists(&mut locked.conn, &role).await? {
            exec(
                &mut locked.conn,
                &format!("ALTER ROLE {} WITH LOGIN PASSWORD {}", role.pg_ident(), verifier.pg_literal()),
            )
            .await?;
            ctx.log("info", &format!("role {role} exists; password re-applied")).await;
        } else {
            exec(
                &mut locked.conn,
                &format!(
                    "CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
                     INHERIT PASSWORD {}",
                    role.pg_ident(),
                    verifier.pg_literal()
                ),
            )
            .await?;
            ctx.log("info", &format!("created role {role}")).await;
        }
    }
    if !superuser {
        // A CREATEROLE admin must be a member of the admin role to create the database
        // owned by it and to set default privileges for it.
        let admin = names.role(Access::Admin);
        let member: bool = sqlx::query_scalar("SELECT pg_catalog.pg_has_role(current_user, $1, 'MEMBER')")
            .bind(&admin)
            .fetch_one(&mut locked.conn)
            .await?;
        if !member {
            exec(&mut locked.conn, &format!("GRANT {} TO CURRENT_USER", admin.pg_ident())).await?;
        }
    }
    locked.roles_unlock().await?;

    // Phase 2: the database itself.
    ctx.step("phase 2/5: database").await;
    ensure_database(ctx, &mut locked.conn, &names, db.connection_limit).await?;

    // Phase 3: who may connect.
    ctx.step("phase 3/5: connect privileges").await;
    let dbi = names.database.pg_ident();
    exec(&mut locked.conn, &format!("REVOKE ALL ON DATABASE {dbi} FROM PUBLIC")).await?;
    exec(
        &mut locked.conn,
        &format!(
            "GRANT CONNECT, TEMPORARY ON DATABASE {dbi} TO {}, {}",
            names.role(Access::Read).pg_ident(),
            names.role(Access::Write).pg_ident()
        ),
    )
    .await?;

    // Phase 4: inside the database.
    ctx.step("phase 4/5: schemas and default privileges").await;
    let mut conn = target.connect(&names.database).await?;
    apply_access_model(&mut conn, &names).await?;

    // Phase 5: extensions.
    ctx.step("phase 5/5: extensions").await;
    for ext in ctx.param_strings("drop_extensions") {
        if !db.extensions.contains(&ext) {
            exec(&mut conn, &format!("DROP EXTENSION IF EXISTS {}", ext.pg_ident())).await?;
            ctx.log("info", &format!("extension {ext} dropped")).await;
        }
    }
    for ext in &db.extensions {
        let present: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = $1)")
                .bind(ext)
                .fetch_one(&mut conn)
                .await?;
        if !present {
            exec(&mut conn, &format!("CREATE EXTENSION IF NOT EXISTS {}", ext.pg_ident())).await?;
            ctx.log("info", &format!("extension {ext} created")).await;
        }
    }
    Ok(())
}

async fn ensure_database(
    ctx: &OpContext,
    conn: &mut PgConnection,
    names: &PhysicalNames,
    limit: i32,
) -> Result<(), OpError> {
    let admin = names.role(Access::Admin);
    let dbi = names.database.pg_ident();
    let found: Option<(String, i32)> = sqlx::query_as(
        "SELECT pg_catalog.pg_get_userbyid(datdba)::text, datconnlimit FROM pg_catalog.pg_database WHERE datname = $1",
    )
    .bind(&names.database)
    .fetch_optional(&mut *conn)
    .await?;
    match found {
        None => {
            exec(
                conn,
                &format!(
                    "CREATE DATABASE {dbi} WITH OWNER {} TEMPLATE template0 ENCODING 'UTF8' CONNECTION LIMIT {limit}",
                    admin.pg_ident()
                ),
            )
            .await?;
            ctx.log("info", &format!("created database {}", names.database)).await;
        }
        Some((owner, current_limit)) => {
            ctx.log("info", &format!("database {} exists", names.database)).await;
            if owner != admin {
                exec(conn, &format!("ALTER DATABASE {dbi} OWNER TO {}", admin.pg_ident())).await?;
                ctx.log("info", &format!("owner changed from {owner} to {admin}")).await;
            }
            if current_limit != limit {
                exec(conn, &format!("ALTER DATABASE {dbi} CONNECTION LIMIT {limit}")).await?;
                ctx.log("info", &format!("connection limit {current_limit} -> {limit}")).await;
            }
        }
    }
    Ok(())
}

/// The access model of DESIGN §3: admin owns `public` and everything it creates; default
/// privileges (with no schema restriction, including ON SCHEMAS) give read and write their
/// rights on whatever admin creates later; objects admin already owns get the same grants.
async fn apply_access_model(conn: &mut PgConnection, names: &PhysicalNames) -> Result<(), OpError> {
    let admin = names.role(Access::Admin).pg_ident();
    let read = names.role(Access::Read).pg_ident();
    let write = names.role(Access::Write).pg_ident();

    let public_owner: Option<String> = sqlx::query_scalar(
        "SELECT pg_catalog.pg_get_userbyid(nspowner)::text FROM pg_catalog.pg_namespace WHERE nspname = 'public'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if public_owner.as_deref().is_some_and(|o| o != names.role(Access::Admin)) {
        exec(conn, &format!("ALTER SCHEMA public OWNER TO {admin}")).await?;
    }
    exec(conn, "REVOKE ALL ON SCHEMA public FROM PUBLIC").await?;

    let stmts = [
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT USAGE ON SCHEMAS TO {read}, {write}"),
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT SELECT ON TABLES TO {read}"),
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO {write}"),
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT SELECT ON SEQUENCES TO {read}"),
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {write}"),
    ];
    for s in &stmts {
        exec(conn, s).await?;
    }

    // Schemas admin already owns (public, and any created before a re-adoption).
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE pg_catalog.pg_get_userbyid(nspowner) = $1 \
         AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'",
    )
    .bind(names.role(Access::Admin))
    .fetch_all(&mut *conn)
    .await?;
    for s in schemas {
        let s = s.pg_ident();
        exec(conn, &format!("GRANT USAGE ON SCHEMA {s} TO {read}, {write}")).await?;
        exec(conn, &format!("GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {read}")).await?;
        exec(conn, &format!("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {s} TO {write}"))
            .await?;
        exec(conn, &format!("GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {read}")).await?;
        exec(conn, &format!("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {write}")).await?;
    }
    Ok(())
}
