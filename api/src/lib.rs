//! dbaas-api: the orchestration API of the self-service PostgreSQL service.

pub mod cli;
pub mod dev;
pub mod http;
pub mod observe;
pub mod ops;
pub mod server;

pub use dbaas_domain::{auth, backup, catalog, crypto, error, hosts, metrics, operation, state};
pub use dbaas_hosts::{pgcluster, tlsgen};
pub use dbaas_managed as managed;
pub use dbaas_portal as portal;
pub use dbaas_store as store;
pub use dbaas_store::naming;
