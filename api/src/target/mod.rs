//! Everything sent to target instances: connections, provisioning in ordered idempotent
//! phases, safe deletes, credentials and leases, drift checks.
//!
//! Every identifier goes through [`crate::naming::PgQuote`]; passwords travel only as SCRAM
//! verifiers; statements on one database run under an advisory lock held on the instance's
//! maintenance database (advisory locks are per database, so all of ours live in one place).

pub mod conn;
pub mod credentials;
pub mod delete;
pub mod drift;
pub mod jobs;
pub mod maintenance;
pub mod ownership;
pub mod provision;
pub mod record;
pub mod repack;
pub mod repack_guard;
pub mod tenant_session;

pub use conn::{InstanceRow, Target};
