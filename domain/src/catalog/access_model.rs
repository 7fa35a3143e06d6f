//! The access model's SQL, planned as data: given what the catalog showed, the list of
//! statements that make a database follow the model. Pure, so it is tested without a server.
//!
//! The model: admin owns `public` and everything it creates; default privileges (with no
//! schema restriction, including ON SCHEMAS) give read and write their rights on whatever
//! admin creates later; objects admin already owns get the same grants now.

use dbaas_client::Access;

use dbaas_store::naming::{PgQuote, PhysicalNames};

/// What the catalog showed before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `public` exists and admin owns it already.
    pub public_owned_by_admin: bool,
    /// Schemas admin owns (after the plan's own ownership change), sorted.
    pub schemas: Vec<String>,
}

pub fn plan(names: &PhysicalNames, found: &Found) -> Vec<String> {
    let admin = names.role(Access::Admin).pg_ident();
    let read = names.role(Access::Read).pg_ident();
    let write = names.role(Access::Write).pg_ident();
    let mut sql = Vec::new();
    if !found.public_owned_by_admin {
        sql.push(format!("ALTER SCHEMA public OWNER TO {admin}"));
    }
    sql.push("REVOKE ALL ON SCHEMA public FROM PUBLIC".to_string());
    sql.extend([
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT USAGE ON SCHEMAS TO {read}, {write}"),
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT SELECT ON TABLES TO {read}"),
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO {write}"),
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT SELECT ON SEQUENCES TO {read}"),
        format!("ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {write}"),
    ]);
    for s in &found.schemas {
        let s = s.pg_ident();
        sql.extend([
            format!("GRANT USAGE ON SCHEMA {s} TO {read}, {write}"),
            format!("GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {read}"),
            format!("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {s} TO {write}"),
            format!("GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {read}"),
            format!("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {write}"),
        ]);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole plan for a new database, as text: any change to the model shows up here.
    #[test]
    fn plan_for_a_new_database() {
        let names = PhysicalNames::new("team-a", "orders");
        let found = Found { public_owned_by_admin: false, schemas: vec!["public".into()] };
        let expected = r#"ALTER SCHEMA public OWNER TO "team-a_orders_admin"
REVOKE ALL ON SCHEMA public FROM PUBLIC
ALTER DEFAULT PRIVILEGES FOR ROLE "team-a_orders_admin" GRANT USAGE ON SCHEMAS TO "team-a_orders_read", "team-a_orders_write"
ALTER DEFAULT PRIVILEGES FOR ROLE "team-a_orders_admin" GRANT SELECT ON TABLES TO "team-a_orders_read"
ALTER DEFAULT PRIVILEGES FOR ROLE "team-a_orders_admin" GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO "team-a_orders_write"
ALTER DEFAULT PRIVILEGES FOR ROLE "team-a_orders_admin" GRANT SELECT ON SEQUENCES TO "team-a_orders_read"
ALTER DEFAULT PRIVILEGES FOR ROLE "team-a_orders_admin" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "team-a_orders_write"
GRANT USAGE ON SCHEMA "public" TO "team-a_orders_read", "team-a_orders_write"
GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "team-a_orders_read"
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA "public" TO "team-a_orders_write"
GRANT SELECT ON ALL SEQUENCES IN SCHEMA "public" TO "team-a_orders_read"
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "public" TO "team-a_orders_write""#;
        assert_eq!(plan(&names, &found).join("\n"), expected);
    }

    /// Re-adoption: public already admin's, a schema admin made since gets its grants; a
    /// schema name is quoted like any identifier.
    #[test]
    fn plan_for_a_readopted_database() {
        let names = PhysicalNames::new("t", "d");
        let found = Found { public_owned_by_admin: true, schemas: vec!["public".into(), "we\"ird".into()] };
        let plan = plan(&names, &found);
        assert!(!plan[0].starts_with("ALTER SCHEMA"));
        assert_eq!(plan.len(), 1 + 5 + 2 * 5);
        assert!(plan.contains(&r#"GRANT USAGE ON SCHEMA "we""ird" TO "t_d_read", "t_d_write""#.to_string()));
    }
}
