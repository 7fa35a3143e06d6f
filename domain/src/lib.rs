//! dbaas-domain: what the service does with its records and its targets: databases, roles
//! and credentials on PostgreSQL instances (`catalog`), backups' policy and lifecycle
//! (`backup`), host registration (`hosts`), the process state (`state`), the operations as
//! the engine runs them (`operation`: the `Host` implementation, contexts, enqueueing), the
//! service's own loops (`ops`: lease reaper, retention, scheduler), authentication of API
//! tokens (`auth`), the one API error type (`error`) and the process's metrics.
//!
//! May use: `dbaas-engine`, `dbaas-store`, `dbaas-hosts`, `dbaas-backup-store`,
//! `dbaas-crypto`, `dbaas-client`'s models.
//! Must never: serve HTTP routes or pages, or register the set of operation kinds (both are
//! the service's, `dbaas-api`); know about managed instances' hosts beyond registering them
//! (that is `dbaas-managed`, above this crate).
//!
//! Within the crate, `catalog` talks to target instances and records each step's result in
//! the state database in the same operation; a `target` crate that never touches the state
//! database would split those two, and is the next cut (see docs/architecture.md).

pub mod auth;
pub mod backup;
pub mod catalog;
pub mod crypto;
pub mod error;
pub mod hosts;
pub mod metrics;
pub mod oidc;
pub mod operation;
pub mod ops;
pub mod state;
