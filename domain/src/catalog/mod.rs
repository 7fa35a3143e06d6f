//! The instances' catalogs as the service sees and changes them: connections, ownership
//! markers, sessions inside tenant databases, provisioning in ordered idempotent phases (the
//! SQL of the access-model phase planned as data in [`access_model`]), safe deletes,
//! credentials and leases, drift, maintenance and pg_repack, and the database jobs.
//!
//! Every identifier goes through [`dbaas_store::naming::PgQuote`]; passwords travel only as SCRAM
//! verifiers; statements on one database run under an advisory lock held on the instance's
//! maintenance database (advisory locks are per database, so all of ours live in one place).

pub mod access_model;
pub mod backup_login;
pub mod backup_restore;
pub mod backups;
pub mod conn;
pub mod credentials;
pub mod delete;
pub mod drift;
pub mod drill;
pub mod jobs;
pub mod libpq;
pub mod maintenance;
pub mod ownership;
pub mod phases;
pub mod provision;
pub mod reconcile;
pub mod record;
pub mod registration;
pub mod repack;
pub mod repack_guard;
pub mod restore;
pub mod service_extensions;
pub mod tenant_session;

pub use conn::{InstanceRow, Target};
