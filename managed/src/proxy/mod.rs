//! The routing proxy of a host: one pgbouncer per host that runs managed instances, one
//! port for all of them; the database name picks the cluster. TLS from clients to the proxy
//! (a certificate from the host's proxy CA) and from the proxy to each cluster
//! (`verify-full` against the clusters' CAs); SCRAM passed through with the verifiers the
//! service sets on the clusters, so no password is on the host. A change of who may log in
//! where is a `RELOAD`, never a restart.
//!
//! [`config`] renders the files from data, [`desired`] reads that data from the state
//! database, [`daemon`] acts on the host, [`sync`] ties them together (on every change, and
//! periodically so a lost file or a killed proxy comes back), [`stats`] reads its pools for
//! the metrics.

pub mod config;
pub mod daemon;
pub mod desired;
pub mod stats;
pub mod sync;
