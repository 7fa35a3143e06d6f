//! The state database's rows and their queries, in one place: what the HTTP handlers, the
//! operations and the background loops read and lock. (Operations have theirs with the
//! queue, `ops::queue`.)

pub mod backups;
pub mod databases;
pub mod hosts;
pub mod instances;
pub mod tokens;
