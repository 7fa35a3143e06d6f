//! dbaas-api: the orchestration API of the self-service PostgreSQL service.

pub mod auth;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod crypto;
pub mod dev;
pub mod error;
pub mod hosts;
pub mod http;
pub mod managed;
pub mod metrics;
pub mod observe;
pub mod operation;
pub mod ops;
pub mod portal;
pub mod server;
pub mod state;

pub use dbaas_hosts::{pgcluster, tlsgen};
pub use dbaas_store as store;
pub use dbaas_store::naming;
