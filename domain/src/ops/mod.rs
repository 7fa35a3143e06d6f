//! The service's own loops over its records: expired leases to revoke (`reaper`), old rows
//! to purge (`retention`), due schedules to fire (`scheduler`).

pub mod reaper;
pub mod retention;
pub mod scheduler;
