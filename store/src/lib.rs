//! dbaas-store: the state database's rows and their queries, its migrations, and the naming
//! rules that map a tenant's input to the identifiers the service creates.
//!
//! Owns: one module per table family (what the HTTP handlers, the operations and the
//! background loops read and lock), [`MIGRATOR`] (the `migrations/` folder, embedded), and
//! [`naming`] (validation and the injective mapping from names to PostgreSQL identifiers).
//! May use: `dbaas-client` (the API's models, which rows turn into) and `dbaas-crypto`.
//! Must never: connect to a target instance or a host, or know the operations' queue (the
//! engine owns the `operations` table's queries).

pub mod backups;
pub mod databases;
pub mod hosts;
pub mod instances;
pub mod naming;
pub mod tokens;

/// The state database's migrations (the workspace's `migrations/` folder), applied at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
