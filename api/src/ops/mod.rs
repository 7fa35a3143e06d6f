//! The service's operations: every kind registered (`job`), and the domain loops
//! (`dbaas_domain::ops`) re-exported where they were.

pub mod job;

pub use dbaas_domain::ops::{reaper, retention, scheduler};
