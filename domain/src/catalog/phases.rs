//! The SQL of provisioning's catalog phases, planned as data: given what the catalog showed
//! (who owns each name, the database's owner and limit, which extensions exist), each planner
//! returns the statements that bring the instance to the record, with what the operation log
//! says about each. Pure, so every phase is tested without a server (the tests below hold the
//! whole text); [`super::provision`] reads the catalog, plans, and executes.
//!
//! A [`Step`]'s `sql` is sent as one simple query: several statements in it run in one
//! implicit transaction (a role and its marker are created together, a `SET` made for one
//! statement is undone if that statement fails).

use dbaas_client::Access;

use super::ownership::Ownership;
use dbaas_store::naming::{Marker, PgQuote, PhysicalNames};

/// One simple query and what the operation log says once it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub sql: String,
    pub note: String,
    /// When PostgreSQL refuses it for lack of privilege (42501): the error code and message
    /// to report instead of the server's.
    pub denied: Option<(&'static str, String)>,
}

impl Step {
    fn new(sql: impl Into<String>, note: impl Into<String>) -> Self {
        Self { sql: sql.into(), note: note.into(), denied: None }
    }
}

/// A name that exists and is not ours: provisioning stops before touching anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign(pub String);

/// Phase 1, one role: created with its marker, or its password re-applied when it is ours.
/// `verifier` is the SCRAM verifier (never the password itself).
pub fn role(role: &str, marker: Marker, found: &Ownership, verifier: &str) -> Result<Step, Foreign> {
    match found {
        Ownership::Ours | Ownership::OursUnmarked => Ok(Step::new(
            format!("ALTER ROLE {} WITH LOGIN PASSWORD {}", role.pg_ident(), verifier.pg_literal()),
            format!("role {role} exists (ours); password re-applied"),
        )),
        Ownership::Absent => Ok(Step::new(
            format!(
                "CREATE ROLE {r} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
                 INHERIT PASSWORD {p}; COMMENT ON ROLE {r} IS {m}",
                r = role.pg_ident(),
                p = verifier.pg_literal(),
                m = marker.text().pg_literal()
            ),
            format!("created role {role}"),
        )),
        Ownership::Foreign(why) => Err(Foreign(format!("role {role} ({why})"))),
    }
}

/// Phase 1, last: a service login that is not superuser (CREATEROLE) must be a member of the
/// admin role to create the database owned by it and set default privileges for it.
pub fn admin_membership(names: &PhysicalNames, superuser: bool, member: bool) -> Vec<Step> {
    if superuser || member {
        return Vec::new();
    }
    let admin = names.role(Access::Admin);
    vec![Step::new(format!("GRANT {} TO CURRENT_USER", admin.pg_ident()), format!("the service joined {admin}"))]
}

/// The database as the catalog showed it (when it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseFound {
    pub ownership: Ownership,
    /// Owner and connection limit; `None` when the database is absent.
    pub settings: Option<(String, i32)>,
}

/// Phase 2: the database, its marker, owner and connection limit. `CREATE DATABASE` cannot
/// run in a transaction, so the marker is a step of its own (see `ownership`).
pub fn database(
    names: &PhysicalNames,
    marker: Marker,
    found: &DatabaseFound,
    connection_limit: i32,
) -> Result<Vec<Step>, Foreign> {
    let db = &names.database;
    let dbi = db.pg_ident();
    let admin = names.role(Access::Admin);
    let mark = |note: String| Step::new(format!("COMMENT ON DATABASE {dbi} IS {}", marker.text().pg_literal()), note);
    let mut steps = Vec::new();
    match &found.ownership {
        Ownership::Absent => {
            return Ok(vec![
                Step::new(
                    format!(
                        "CREATE DATABASE {dbi} WITH OWNER {} TEMPLATE template0 ENCODING 'UTF8' CONNECTION LIMIT {connection_limit}",
                        admin.pg_ident()
                    ),
                    format!("created database {db}"),
                ),
                mark(format!("database {db} marked as ours")),
            ]);
        }
        Ownership::OursUnmarked => {
            steps.push(mark(format!("database {db} marked as ours (an earlier attempt stopped)")))
        }
        Ownership::Ours => {}
        Ownership::Foreign(why) => return Err(Foreign(format!("database {db} ({why})"))),
    }
    if let Some((owner, limit)) = &found.settings {
        if *owner != admin {
            steps.push(Step::new(
                format!("ALTER DATABASE {dbi} OWNER TO {}", admin.pg_ident()),
                format!("owner changed from {owner} to {admin}"),
            ));
        }
        if *limit != connection_limit {
            steps.push(Step::new(
                format!("ALTER DATABASE {dbi} CONNECTION LIMIT {connection_limit}"),
                format!("connection limit {limit} -> {connection_limit}"),
            ));
        }
    }
    Ok(steps)
}

/// Phase 3: only read and write (and admin, the owner) may connect.
pub fn connect_privileges(names: &PhysicalNames) -> Vec<Step> {
    let dbi = names.database.pg_ident();
    vec![
        Step::new(format!("REVOKE ALL ON DATABASE {dbi} FROM PUBLIC"), "PUBLIC may not connect"),
        Step::new(
            format!(
                "GRANT CONNECT, TEMPORARY ON DATABASE {dbi} TO {}, {}",
                names.role(Access::Read).pg_ident(),
                names.role(Access::Write).pg_ident()
            ),
            "read and write may connect",
        ),
    ]
}

/// Phase 5: extensions dropped from the record go, wanted ones missing are created, as the
/// database's admin role. PostgreSQL lets a database owner create only *trusted* extensions;
/// an untrusted one would need the service to run its install script as superuser in a
/// schema the tenant owns, which it never does. They go where a database owner's would:
/// `public` (with the session's pinned path the first schema would be `pg_catalog`), and the
/// pinned path comes back in the same transaction.
pub fn extensions(wanted: &[String], present: &[String], dropped: &[String], pinned_path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for ext in dropped.iter().filter(|e| !wanted.contains(e)) {
        steps.push(Step::new(
            format!("DROP EXTENSION IF EXISTS {}", ext.pg_ident()),
            format!("extension {ext} dropped"),
        ));
    }
    for ext in wanted.iter().filter(|e| !present.contains(e)) {
        steps.push(Step {
            sql: format!(
                "SET search_path = public; CREATE EXTENSION IF NOT EXISTS {}; SET search_path = {pinned_path}",
                ext.pg_ident()
            ),
            note: format!("extension {ext} created"),
            denied: Some((
                "extension_not_trusted",
                format!(
                    "extension {ext} is not a trusted extension: only a superuser could install it, and the service \
                     never runs install scripts as superuser inside a tenant's database"
                ),
            )),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn names() -> PhysicalNames {
        PhysicalNames::new("team-a", "orders")
    }

    fn id() -> Uuid {
        "00000000-0000-0000-0000-00000000000a".parse().expect("uuid")
    }

    fn sql(steps: &[Step]) -> String {
        steps.iter().map(|s| format!("{}\n", s.sql)).collect()
    }

    #[test]
    fn roles() {
        let m = Marker::Role(id());
        let created = role("team-a_orders_admin", m, &Ownership::Absent, "SCRAM-SHA-256$x").expect("plan");
        assert_eq!(
            created.sql,
            "CREATE ROLE \"team-a_orders_admin\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
             NOBYPASSRLS INHERIT PASSWORD 'SCRAM-SHA-256$x'; COMMENT ON ROLE \"team-a_orders_admin\" IS \
             'dbaas:credential:00000000-0000-0000-0000-00000000000a'"
        );
        // The note goes to the operation log: never the verifier.
        assert_eq!(created.note, "created role team-a_orders_admin");
        let again = role("team-a_orders_admin", m, &Ownership::Ours, "v").expect("plan");
        assert_eq!(again.sql, "ALTER ROLE \"team-a_orders_admin\" WITH LOGIN PASSWORD 'v'");
        let foreign = role("team-a_orders_admin", m, &Ownership::Foreign("no dbaas marker".into()), "v");
        assert_eq!(foreign, Err(Foreign("role team-a_orders_admin (no dbaas marker)".into())));
    }

    #[test]
    fn membership_only_when_needed() {
        assert!(admin_membership(&names(), true, false).is_empty());
        assert!(admin_membership(&names(), false, true).is_empty());
        assert_eq!(sql(&admin_membership(&names(), false, false)), "GRANT \"team-a_orders_admin\" TO CURRENT_USER\n");
    }

    #[test]
    fn database_phase() {
        let m = Marker::Database(id());
        let new = DatabaseFound { ownership: Ownership::Absent, settings: None };
        assert_eq!(
            sql(&database(&names(), m, &new, 20).expect("plan")),
            "CREATE DATABASE \"team-a_orders\" WITH OWNER \"team-a_orders_admin\" TEMPLATE template0 ENCODING 'UTF8' \
             CONNECTION LIMIT 20\n\
             COMMENT ON DATABASE \"team-a_orders\" IS 'dbaas:database:00000000-0000-0000-0000-00000000000a'\n"
        );
        // Ours and as recorded: nothing to do.
        let same = DatabaseFound { ownership: Ownership::Ours, settings: Some(("team-a_orders_admin".into(), 20)) };
        assert!(database(&names(), m, &same, 20).expect("plan").is_empty());
        // Unmarked after a crash, owner and limit drifted.
        let drifted = DatabaseFound { ownership: Ownership::OursUnmarked, settings: Some(("postgres".into(), 5)) };
        assert_eq!(
            sql(&database(&names(), m, &drifted, 20).expect("plan")),
            "COMMENT ON DATABASE \"team-a_orders\" IS 'dbaas:database:00000000-0000-0000-0000-00000000000a'\n\
             ALTER DATABASE \"team-a_orders\" OWNER TO \"team-a_orders_admin\"\n\
             ALTER DATABASE \"team-a_orders\" CONNECTION LIMIT 20\n"
        );
        let foreign = DatabaseFound { ownership: Ownership::Foreign("x".into()), settings: Some(("bob".into(), -1)) };
        assert_eq!(database(&names(), m, &foreign, 20), Err(Foreign("database team-a_orders (x)".into())));
    }

    #[test]
    fn connect_phase() {
        assert_eq!(
            sql(&connect_privileges(&names())),
            "REVOKE ALL ON DATABASE \"team-a_orders\" FROM PUBLIC\n\
             GRANT CONNECT, TEMPORARY ON DATABASE \"team-a_orders\" TO \"team-a_orders_read\", \"team-a_orders_write\"\n"
        );
    }

    #[test]
    fn extensions_phase() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let steps = extensions(
            &s(&["citext", "pgcrypto"]),
            &s(&["pgcrypto"]),
            &s(&["hstore", "citext"]),
            "pg_catalog, pg_temp",
        );
        assert_eq!(
            sql(&steps),
            "DROP EXTENSION IF EXISTS \"hstore\"\n\
             SET search_path = public; CREATE EXTENSION IF NOT EXISTS \"citext\"; SET search_path = pg_catalog, pg_temp\n"
        );
        assert!(steps[0].denied.is_none());
        assert_eq!(steps[1].denied.as_ref().map(|d| d.0), Some("extension_not_trusted"));
        assert!(extensions(&s(&["citext"]), &s(&["citext"]), &[], "p").is_empty());
    }
}
