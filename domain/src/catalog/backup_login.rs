//! The login backups read a database with: `<physical>_backup`.
//!
//! Multi-tenant tables commonly use row-level security with `FORCE ROW LEVEL SECURITY`, which
//! applies policies to the table's owner too; `pg_dump` as the database's admin role then
//! stops ("query would be affected by row-level security policy") and the database has no
//! backup at all. This login reads everything: it has `BYPASSRLS` and is a member of
//! `pg_read_all_data`, owns nothing, can create nothing, and may connect to the database (and,
//! during an in-place restore, to its side copy) only.
//!
//! Why it is safe:
//! - It can read nothing the admin role cannot already: the admin owns the tables and can
//!   always turn their policies off; `pg_read_all_data` reaches other databases only where
//!   this login has CONNECT, which it has on this database's own copies alone (the service
//!   revokes PUBLIC's CONNECT on every database it makes and on the maintenance databases).
//! - No tenant code runs in its sessions: `pg_dump` and the manifest's row counts read table
//!   data (COPY, `count(*)`, and the rows' text as `textin(record_out(row))`, never `row::text`,
//!   which a cast the table's owner defines would turn into a call of its function; the
//!   output functions are built-in, since a base type with functions of one's own needs
//!   superuser), in a read-only transaction with `search_path` pinned and row security off,
//!   so no policy expression is evaluated; it owns no object a trigger or rule could hang on,
//!   and nothing is a member of it (any membership found is revoked when it is opened).
//! - Its password exists only while a backup or check uses it: a fresh random one is set
//!   (as a SCRAM verifier, `VALID UNTIL` an hour later in case this process dies) under the
//!   database's backup lock, and removed (`PASSWORD NULL`, its sessions ended) when the work
//!   ends, so between uses it cannot log in at all; it is never stored.
//! - It is marked like every role the service makes and dropped with the database.
//!
//! `BYPASSRLS` can only be given by a superuser: on an external instance whose service login is
//! not one, backups run as the admin role as before (and tables with forced row security
//! cannot be backed up there; the error says so).

use sqlx::PgConnection;
use uuid::Uuid;

use super::conn::exec;
use super::ownership::{self, Ownership};
use dbaas_engine::OpError;
use dbaas_store::naming::{Marker, PgQuote, PhysicalNames};

/// `<physical>_backup`: `backup` is no access level, so it is no static role's or lease's name.
pub fn name(names: &PhysicalNames) -> String {
    format!("{}_backup", names.database)
}

/// The marker of a database's backup login: the database's own record id, as a role.
pub fn marker(db: Uuid) -> Marker {
    Marker::BackupLogin(db)
}

/// A usable backup login: its name and this use's password.
pub struct BackupLogin {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BackupLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupLogin").field("user", &self.user).finish_non_exhaustive()
    }
}

/// Whether the service's own login can make such a login (it must be a superuser).
pub async fn supported(maint: &mut PgConnection) -> Result<bool, OpError> {
    Ok(sqlx::query_scalar(
        "SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER",
    )
    .fetch_one(maint)
    .await?)
}

/// Takes the database's backup lock on the service's maintenance session (held until
/// [`close`] or the session ends): two uses of the login never race on its password.
async fn lock(maint: &mut PgConnection, names: &PhysicalNames) -> Result<(), OpError> {
    sqlx::query("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext($1))")
        .bind(format!("dbaas:backup-login:{}", names.database))
        .execute(&mut *maint)
        .await?;
    Ok(())
}

/// Creates the login if missing (refusing a same-named role that is not ours), makes sure of
/// its attributes, lets it connect to the database and to `also` (a side copy), and gives it
/// a fresh password. `None` when the service's login cannot give `BYPASSRLS`.
pub async fn open(
    maint: &mut PgConnection,
    names: &PhysicalNames,
    db: Uuid,
    also: Option<&str>,
) -> Result<Option<BackupLogin>, OpError> {
    if !supported(maint).await? {
        return Ok(None);
    }
    lock(maint, names).await?;
    let user = name(names);
    let role = user.pg_ident();
    let password = crate::crypto::generate_password();
    let verifier = crate::crypto::scram_sha256_verifier(&password).pg_literal();
    // The service keeps the roles' DDL serialised instance-wide (pg_authid is shared).
    sqlx::query("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('dbaas:roles'))").execute(&mut *maint).await?;
    let result = async {
        match ownership::role(maint, &user, marker(db)).await? {
            Ownership::Absent => {
                exec(maint, &format!("CREATE ROLE {role} LOGIN")).await?;
                exec(maint, &format!("COMMENT ON ROLE {role} IS {}", marker(db).text().pg_literal())).await?;
            }
            Ownership::Ours | Ownership::OursUnmarked => {}
            Ownership::Foreign(why) => {
                return Err(ownership::conflict(&[format!("role {user} ({why})")]));
            }
        }
        // VALID UNTIL bounds the password if this process dies before `close` (sessions are
        // opened right after this; it only limits new logins).
        exec(
            maint,
            &format!(
                "ALTER ROLE {role} LOGIN INHERIT BYPASSRLS NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
                 CONNECTION LIMIT 4 PASSWORD {verifier} VALID UNTIL {}",
                (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339().pg_literal()
            ),
        )
        .await?;
        // Settings a role can carry would apply to its sessions: none are kept.
        exec(maint, &format!("ALTER ROLE {role} RESET ALL")).await?;
        exec(maint, &format!("ALTER ROLE {role} IN DATABASE {} RESET ALL", names.database.pg_ident())).await?;
        // Nothing is a member of it (a member could act as it).
        super::conn::revoke_members(maint, &user).await?;
        exec(maint, &format!("GRANT pg_read_all_data TO {role}")).await?;
        for dbname in std::iter::once(names.database.as_str()).chain(also) {
            exec(maint, &format!("GRANT CONNECT ON DATABASE {} TO {role}", dbname.pg_ident())).await?;
        }
        Ok(())
    }
    .await;
    sqlx::query("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('dbaas:roles'))")
        .execute(&mut *maint)
        .await?;
    result?;
    Ok(Some(BackupLogin { user, password }))
}

/// Takes the login's password away (it can no longer log in), ends any session of it left,
/// and releases the lock.
pub async fn close(maint: &mut PgConnection, names: &PhysicalNames, db: Uuid) -> Result<(), OpError> {
    let user = name(names);
    sqlx::query("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('dbaas:roles'))").execute(&mut *maint).await?;
    let result = async {
        if ownership::role(maint, &user, marker(db)).await?.is_ours() {
            exec(maint, &format!("ALTER ROLE {} PASSWORD NULL", user.pg_ident())).await?;
            super::conn::terminate_role_sessions(maint, &user).await?;
        }
        Ok::<(), OpError>(())
    }
    .await;
    sqlx::query("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('dbaas:roles'))")
        .execute(&mut *maint)
        .await?;
    sqlx::query("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext($1))")
        .bind(format!("dbaas:backup-login:{}", names.database))
        .execute(&mut *maint)
        .await?;
    result
}

/// Drops the login of a database being deleted (only if it carries this database's marker).
pub async fn drop(
    target: &super::Target,
    maint: &mut PgConnection,
    names: &PhysicalNames,
    db: Uuid,
) -> Result<Vec<String>, OpError> {
    super::conn::drop_role_everywhere(target, maint, &name(names), marker(db), None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_name_is_no_static_role_nor_lease() {
        let names = PhysicalNames::new("team-a", "orders");
        assert_eq!(name(&names), "team-a_orders_backup");
        assert_eq!(PhysicalNames::parse(&name(&names)), None);
        assert_ne!(marker(Uuid::nil()).text(), Marker::Database(Uuid::nil()).text());
        assert_ne!(marker(Uuid::nil()).text(), Marker::Role(Uuid::nil()).text());
    }
}
