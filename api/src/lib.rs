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
pub mod naming;
pub mod observe;
pub mod ops;
pub mod pgcluster;
pub mod portal;
pub mod server;
pub mod state;
pub mod store;
pub mod tlsgen;
