//! Durable operations: the queue in the state database, the workers that run them, the
//! LISTEN/NOTIFY plumbing that wakes workers and long-polling clients, and the lease reaper.

pub mod error;
pub mod job;
pub mod listener;
pub mod periodic;
pub mod queue;
pub mod reaper;
pub mod retention;
pub mod runner;
pub mod scheduler;
pub mod timing;
pub mod worker;

pub use error::OpError;
pub use queue::{OperationRow, OPERATION_COLUMNS};
