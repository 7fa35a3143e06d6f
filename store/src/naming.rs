//! Names of tenants, instances and databases, the physical names derived from them, the
//! ownership markers put on what the service creates, and the one quoting trait every SQL
//! statement sent to a target goes through.
//!
//! # The physical naming rule (injective by construction)
//! Tenant and database names are slugs: `[a-z0-9-]`, starting with a letter, never ending with
//! `-`. They can never contain `_`, so `_` is the separator:
//!
//! | object | physical name |
//! |---|---|
//! | database | `<tenant>_<database>` |
//! | static role | `<tenant>_<database>_<access>` |
//! | lease | `<tenant>_<database>_<access>_<8 random a-z0-9>` |
//!
//! Splitting a physical name on `_` gives back its parts, so two different (tenant, database)
//! pairs never map to the same name, and a database, a role and a lease differ by their number
//! of parts. [`PhysicalNames::parse`] is that inverse; the unit tests check the round trip.

use dbaas_client::Access;
use uuid::Uuid;

pub use dbaas_client::names::*;

/// The separator between parts of a physical name; slugs cannot contain it.
pub const SEPARATOR: char = '_';

/// Physical names on the instance, derived by the naming rule above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysicalNames {
    pub database: String,
}

/// What a physical name decomposes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Database { tenant: String, name: String },
    Role { tenant: String, name: String, access: Access },
    Lease { tenant: String, name: String, access: Access, suffix: String },
}

impl PhysicalNames {
    pub fn new(tenant: &str, name: &str) -> Self {
        debug_assert!(!tenant.contains(SEPARATOR) && !name.contains(SEPARATOR));
        Self { database: format!("{tenant}{SEPARATOR}{name}") }
    }
    /// The names of a database whose physical name is stored (the state database keeps it).
    pub fn from_stored(database: &str) -> Self {
        Self { database: database.to_string() }
    }
    pub fn role(&self, access: Access) -> String {
        format!("{}{SEPARATOR}{}", self.database, access.as_str())
    }
    pub fn lease_role(&self, access: Access, suffix: &str) -> String {
        format!("{}{SEPARATOR}{}{SEPARATOR}{}", self.database, access.as_str(), suffix)
    }

    /// The inverse of the mapping: `None` for a name the service would never produce.
    pub fn parse(physical: &str) -> Option<Parsed> {
        let parts: Vec<&str> = physical.split(SEPARATOR).collect();
        let slug = |s: &str| validate_slug_part(s);
        match parts.as_slice() {
            [t, n] if slug(t) && slug(n) => Some(Parsed::Database { tenant: t.to_string(), name: n.to_string() }),
            [t, n, a] if slug(t) && slug(n) => {
                Some(Parsed::Role { tenant: t.to_string(), name: n.to_string(), access: a.parse().ok()? })
            }
            [t, n, a, s]
                if slug(t)
                    && slug(n)
                    && s.len() == LEASE_SUFFIX_LEN
                    && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
            {
                Some(Parsed::Lease {
                    tenant: t.to_string(),
                    name: n.to_string(),
                    access: a.parse().ok()?,
                    suffix: s.to_string(),
                })
            }
            _ => None,
        }
    }
}

fn validate_slug_part(s: &str) -> bool {
    validate_database_name("t", s).is_ok() || validate_tenant_name(s).is_ok()
}

/// The comment the service puts on every database and role it creates on a target, naming
/// the record it belongs to. Nothing without the exact marker is ever altered, granted on,
/// re-passworded or dropped (tenants cannot comment on roles, and only on their own database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A database: the id of its record.
    Database(Uuid),
    /// A role (static or lease): the id of its credential record.
    Role(Uuid),
    /// A database's backup login (`catalog::backup_login`): the id of the database's record.
    BackupLogin(Uuid),
    /// What a drill makes (`catalog::drill`): the id of the backup it restores.
    Drill(Uuid),
}

impl Marker {
    pub fn text(&self) -> String {
        match self {
            Self::Database(id) => format!("dbaas:database:{id}"),
            Self::Role(id) => format!("dbaas:credential:{id}"),
            Self::BackupLogin(id) => format!("dbaas:backup-login:{id}"),
            Self::Drill(id) => format!("dbaas:verify:{id}"),
        }
    }
}

/// Quoting for SQL text. Identifiers follow `quote_ident` (always quoted, since ours contain
/// `-`); literals follow `quote_literal` with standard_conforming_strings (doubled quotes, and
/// the `E''` form when a backslash is present).
pub trait PgQuote {
    fn pg_ident(&self) -> String;
    fn pg_literal(&self) -> String;
}

impl PgQuote for str {
    fn pg_ident(&self) -> String {
        format!("\"{}\"", self.replace('"', "\"\""))
    }
    fn pg_literal(&self) -> String {
        let body = self.replace('\'', "''");
        if body.contains('\\') {
            format!("E'{}'", body.replace('\\', "\\\\"))
        } else {
            format!("'{body}'")
        }
    }
}

impl PgQuote for String {
    fn pg_ident(&self) -> String {
        self.as_str().pg_ident()
    }
    fn pg_literal(&self) -> String {
        self.as_str().pg_literal()
    }
}

/// A host name or IP address: no spaces, slashes or leading '-' (it reaches command lines).
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && !h.starts_with('-')
        && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn quoting() {
        assert_eq!("a-b".pg_ident(), "\"a-b\"");
        assert_eq!("we\"ird".pg_ident(), "\"we\"\"ird\"");
        assert_eq!("it's".pg_literal(), "'it''s'");
        assert_eq!("a\\b".pg_literal(), "E'a\\\\b'");
    }

    /// The collision that let tenant `team` take over `team-a`'s database.
    #[test]
    fn hyphens_do_not_collide() {
        let a = PhysicalNames::new("team", "a-orders");
        let b = PhysicalNames::new("team-a", "orders");
        assert_ne!(a.database, b.database);
        for access in Access::ALL {
            assert_ne!(a.role(access), b.role(access));
        }
    }

    /// Every name built from a set of slugs is distinct from every other, across databases,
    /// roles and leases, and parses back to what built it.
    #[test]
    fn mapping_is_injective_and_invertible() {
        let slugs = ["a", "a-b", "b", "a-b-c", "b-c", "c", "team", "team-a", "a-orders", "orders", "x1-2"];
        let suffixes = ["abcdefgh", "a-bcdefg"];
        let mut seen: HashMap<String, Parsed> = HashMap::new();
        let mut insert = |name: String, what: Parsed| {
            if let Some(prev) = seen.insert(name.clone(), what.clone()) {
                panic!("{name} is produced by both {prev:?} and {what:?}");
            }
        };
        for t in slugs {
            for n in slugs {
                let p = PhysicalNames::new(t, n);
                let db = Parsed::Database { tenant: t.into(), name: n.into() };
                assert_eq!(PhysicalNames::parse(&p.database), Some(db.clone()));
                insert(p.database.clone(), db);
                for access in Access::ALL {
                    let role = Parsed::Role { tenant: t.into(), name: n.into(), access };
                    assert_eq!(PhysicalNames::parse(&p.role(access)), Some(role.clone()));
                    insert(p.role(access), role);
                    for s in suffixes {
                        let lease = Parsed::Lease { tenant: t.into(), name: n.into(), access, suffix: s.into() };
                        let name = p.lease_role(access, s);
                        // A suffix the service would not produce is not parsed as a lease.
                        if s.contains('-') {
                            assert_eq!(PhysicalNames::parse(&name), None);
                        } else {
                            assert_eq!(PhysicalNames::parse(&name), Some(lease.clone()));
                        }
                        insert(name, lease);
                    }
                }
            }
        }
    }

    #[test]
    fn markers_name_their_record() {
        let id = Uuid::nil();
        assert_eq!(Marker::Database(id).text(), format!("dbaas:database:{id}"));
        assert_ne!(Marker::Database(id).text(), Marker::Role(id).text());
    }
}
