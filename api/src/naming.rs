//! Names of tenants, instances and databases, the physical names derived from them, and the
//! one quoting trait every SQL statement sent to a target goes through.

use dbaas_client::Access;

pub use dbaas_client::names::*;

/// Physical names on the instance, derived by the naming convention (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysicalNames {
    pub database: String,
}

impl PhysicalNames {
    pub fn new(tenant: &str, name: &str) -> Self {
        Self { database: format!("{tenant}-{name}") }
    }
    pub fn role(&self, access: Access) -> String {
        format!("{}-{}", self.database, access.as_str())
    }
    pub fn lease_role(&self, access: Access, suffix: &str) -> String {
        format!("{}-{}-{}", self.database, access.as_str(), suffix)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!("a-b".pg_ident(), "\"a-b\"");
        assert_eq!("we\"ird".pg_ident(), "\"we\"\"ird\"");
        assert_eq!("it's".pg_literal(), "'it''s'");
        assert_eq!("a\\b".pg_literal(), "E'a\\\\b'");
    }
}
