//! dbaas-api: the service at the top of the workspace: the HTTP API (`http`), observability
//! (`observe`: collectors, exposition, the service's gauges), the command line (`cli`), the
//! embedded `dev` mode, the server that starts everything (`server`), and the one place that
//! registers every operation kind (`ops::job`) and hands it to the engine's workers.
//!
//! May use every crate below it (`dbaas-domain`, `dbaas-managed`, `dbaas-portal`, the engine,
//! the store, hosts and backup stores); they are re-exported here under their old paths, so
//! `dbaas_api::catalog::…` and the like keep working for the tests and tools.
//! Must never: hold domain logic a lower crate could hold (a handler validates, calls the
//! domain, and answers).

pub mod cli;
pub mod dev;
pub mod http;
pub mod observe;
pub mod ops;
pub mod server;

pub use dbaas_domain::{auth, backup, catalog, crypto, error, hosts, metrics, oidc, operation, state};
pub use dbaas_hosts::{pgcluster, tlsgen};
pub use dbaas_managed as managed;
pub use dbaas_portal as portal;
pub use dbaas_store as store;
pub use dbaas_store::naming;
