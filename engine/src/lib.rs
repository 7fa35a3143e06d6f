//! dbaas-engine: durable operations, knowing no domain.
//!
//! Owns: the `operations` and `operation_logs` tables' queries ([`queue`]: enqueue, claim
//! with `FOR UPDATE SKIP LOCKED`, a lease renewed by heartbeat, exponential backoff, hand-back
//! at shutdown), the workers that run claimed operations ([`worker`]), the end of an operation
//! and its effect in one transaction ([`runner`]), the LISTEN/NOTIFY fan-out ([`listener`]),
//! loops that run once per interval, across replicas when asked ([`periodic`]), and cron and
//! time-of-day arithmetic ([`timing`]).
//!
//! The application brings the rest, the way crates.io's worker runs the `BackgroundJob`s an
//! application registers: its process state implements [`Host`] (pools, tunables, the kind
//! type, what a finished attempt is counted as), each kind of operation implements
//! [`Operation`], and the closed set of them implements [`JobSet`] (decode a stored row,
//! run, apply the outcome, clean up).
//!
//! May use: sqlx, tokio, serde, `dbaas-crypto` (only to classify an unreadable secret).
//! Must never: name a domain type (a kind, a table other than its own two, a tenant's
//! resource), nor decide what an operation does.

pub mod context;
pub mod error;
pub mod host;
pub mod job;
pub mod listener;
pub mod periodic;
pub mod queue;
pub mod runner;
pub mod timing;
pub mod worker;

pub use context::OpContext;
pub use error::OpError;
pub use host::{Host, Kind, Urgent, WorkerConfig};
pub use job::{JobSet, Operation};
pub use queue::{OperationRow, Payload, Status};
