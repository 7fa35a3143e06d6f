//! Provisioning (and re-applying) a database with its three roles, in ordered phases:
//! ownership check → roles → database → database-level privileges → schema and default
//! privileges → extensions. Each phase reads the catalog first and is safe to run again.
//!
//! Phases 1-3 run in the instance's maintenance database as the service (no tenant code lives
//! there); phases 4-5 run inside the tenant's database as its admin role
//! ([`super::tenant_session`]), so nothing the tenant defined there runs with our privileges.

use dbaas_client::Access;
use sqlx::PgConnection;

use super::conn::{exec, Locked};
use super::ownership::{self, Claim};
use super::phases;
use super::record::{self, CredentialRow, DatabaseRow};
use crate::operation::OpContext;
use dbaas_engine::OpError;
use dbaas_store::naming::{Marker, PhysicalNames};

/// The order of the roles in a [`Claim`]: admin first (it vouches for an unmarked database).
const CLAIM_ORDER: [Access; 3] = [Access::Admin, Access::Write, Access::Read];

/// The objects a database record owns on its instance, with their markers (admin role first).
pub fn claim<'a>(db: &'a DatabaseRow, creds: &[CredentialRow]) -> Result<Claim<'a>, OpError> {
    let mut roles = Vec::new();
    for access in CLAIM_ORDER {
        roles.push((db.physical().role(access), Marker::Role(static_credential(creds, access)?.id)));
    }
    Ok(Claim { database: (&db.physical_name, Marker::Database(db.id)), roles })
}

pub fn static_credential(creds: &[CredentialRow], access: Access) -> Result<&CredentialRow, OpError> {
    creds
        .iter()
        .find(|c| c.kind == dbaas_client::CredentialKind::Static && c.access() == access)
        .ok_or_else(|| OpError::permanent("missing_credential", format!("no stored {} credential", access.as_str())))
}

pub async fn run(ctx: &OpContext, drop_extensions: &[String]) -> Result<(), OpError> {
    let state = &ctx.state;
    let (db, inst, target) = record::for_operation(&state.db, &state.key, ctx.op.target_id).await?;
    let creds = record::credentials(&state.db, db.id).await?;
    let names = db.physical();
    let claim = claim(&db, &creds)?;

    ctx.step(&format!("connecting to instance {} ({}:{})", inst.name, inst.host, inst.port)).await;
    let mut locked = Locked::database(&target, &names.database).await?;
    let superuser: bool = sqlx::query_scalar(
        "SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user",
    )
    .fetch_one(&mut locked.conn)
    .await?;

    // Phase 0: every name must be free or ours before anything is touched.
    ctx.step("phase 0/5: ownership of the names").await;
    let foreign = ownership::foreign_objects(&mut locked.conn, &claim).await?;
    if !foreign.is_empty() {
        return Err(ownership::conflict(&foreign));
    }

    // Phase 1: roles, each created with its marker in one transaction.
    ctx.step("phase 1/5: roles").await;
    locked.roles_lock().await?;
    for (access, (role, marker)) in CLAIM_ORDER.into_iter().zip(&claim.roles) {
        let cred = static_credential(&creds, access)?;
        // A rotation in flight wins: its password is the one about to be recorded.
        let enc = cred.pending_password_enc.as_ref().unwrap_or(&cred.password_enc);
        // Derived, not random: the routing proxy's auth file holds the same verifier.
        let verifier = state.key.scram_verifier(&state.key.decrypt(enc, &cred.context())?, &cred.context());
        let found = ownership::role(&mut locked.conn, role, *marker).await?;
        let step = phases::role(role, *marker, &found, &verifier).map_err(conflict_of)?;
        run_steps(ctx, &mut locked.conn, &[step]).await?;
    }
    let member: bool = sqlx::query_scalar("SELECT pg_catalog.pg_has_role(current_user, $1, 'MEMBER')")
        .bind(names.role(Access::Admin))
        .fetch_one(&mut locked.conn)
        .await?;
    run_steps(ctx, &mut locked.conn, &phases::admin_membership(&names, superuser, member)).await?;
    locked.roles_unlock().await?;

    // Phase 2: the database itself.
    ctx.step("phase 2/5: database").await;
    let (admin_role, admin_marker) = (&claim.roles[0].0, claim.roles[0].1);
    let marker = Marker::Database(db.id);
    let found = phases::DatabaseFound {
        ownership: ownership::database(&mut locked.conn, &names.database, marker, admin_role, admin_marker).await?,
        settings: sqlx::query_as(
            "SELECT pg_catalog.pg_get_userbyid(d.datdba)::text, d.datconnlimit FROM pg_catalog.pg_database d \
             WHERE d.datname OPERATOR(pg_catalog.=) $1",
        )
        .bind(&names.database)
        .fetch_optional(&mut locked.conn)
        .await?,
    };
    let steps = phases::database(&names, marker, &found, db.connection_limit).map_err(conflict_of)?;
    if steps.is_empty() {
        ctx.log("info", &format!("database {} exists (ours)", names.database)).await;
    }
    run_steps(ctx, &mut locked.conn, &steps).await?;

    // Phase 3: who may connect.
    ctx.step("phase 3/5: connect privileges").await;
    run_steps(ctx, &mut locked.conn, &phases::connect_privileges(&names)).await?;

    // Phase 4: inside the database, as its admin role.
    ctx.step("phase 4/5: schemas and default privileges (as the database's admin role)").await;
    let mut conn = super::tenant_session::connect(&target, &state.key, &db, &creds).await?;
    apply_access_model(&mut conn, &names).await?;

    // Phase 5: extensions, as the admin role too (trusted extensions only).
    ctx.step("phase 5/5: extensions").await;
    let present: Vec<String> =
        sqlx::query_scalar("SELECT e.extname::text FROM pg_catalog.pg_extension e").fetch_all(&mut conn).await?;
    let steps = phases::extensions(&db.extensions, &present, drop_extensions, super::conn::PINNED_SEARCH_PATH);
    run_steps(ctx, &mut conn, &steps).await?;
    drop(conn);
    drop(locked);
    // The routing proxy of a managed instance's host: this database and its logins.
    state.sync_proxy(db.instance_id).await
}

fn conflict_of(f: phases::Foreign) -> OpError {
    ownership::conflict(&[f.0])
}

/// Executes planned steps in order, logging each; a refusal for lack of privilege becomes
/// the step's own error when it names one.
async fn run_steps(ctx: &OpContext, conn: &mut PgConnection, steps: &[phases::Step]) -> Result<(), OpError> {
    for step in steps {
        match (exec(conn, &step.sql).await, &step.denied) {
            (Err(e), Some((code, message))) if e.code == "42501" => {
                return Err(OpError::permanent(code, format!("{message} ({})", e.message)));
            }
            (r, _) => r?,
        }
        ctx.log("info", &step.note).await;
    }
    Ok(())
}

/// The access model, applied as the admin role itself: the statements come from
/// [`super::access_model::plan`] once the catalog has said who owns `public` and which
/// schemas admin owns.
pub(super) async fn apply_access_model(conn: &mut PgConnection, names: &PhysicalNames) -> Result<(), OpError> {
    let admin_name = names.role(Access::Admin);
    let public_owner: Option<String> = sqlx::query_scalar(
        "SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text FROM pg_catalog.pg_namespace n \
         WHERE n.nspname OPERATOR(pg_catalog.=) 'public'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    // Schemas admin already owns (public, and any created before a re-adoption).
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_catalog.pg_namespace n \
         WHERE n.nspowner OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1) \
           AND n.nspname OPERATOR(pg_catalog.!~) '^pg_' AND n.nspname OPERATOR(pg_catalog.<>) 'information_schema' \
         ORDER BY 1",
    )
    .bind(&admin_name)
    .fetch_all(&mut *conn)
    .await?;
    let found = super::access_model::Found {
        public_owned_by_admin: public_owner.as_deref().is_none_or(|o| o == admin_name),
        // After the ownership change the plan makes, public is admin's too.
        schemas: if schemas.iter().any(|s| s == "public") || public_owner.is_none() {
            schemas
        } else {
            let mut all = schemas;
            all.push("public".into());
            all.sort();
            all
        },
    };
    for stmt in super::access_model::plan(names, &found) {
        exec(conn, &stmt).await?;
    }
    Ok(())
}
