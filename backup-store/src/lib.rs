//! dbaas-backup-store: where sealed backups are kept. Sealing (`seal`: a per-backup data key
//! wrapped by the master key, the dump encrypted and authenticated chunk by chunk), and the
//! stores objects go to: a filesystem directory or an S3 bucket (Object Lock retention and
//! object versions), behind one [`store::Store`].
//!
//! May use: `dbaas-crypto` (the master key), `dbaas-store` (a store's row, to open it).
//! Must never: connect to PostgreSQL, run a dump, or decide what is backed up when: it keeps
//! and returns objects.

pub mod filesystem;
pub mod object;
pub mod s3;
pub mod seal;
pub mod store;
