//! Backups of one database: sealed (encrypted and authenticated) on the API host, kept in a
//! backup store. This is the storage and sealing layer the backup, restore and verify
//! operations build on.

pub mod seal;
pub mod store;
