//! Point-in-time recovery of managed instances with pgBackRest: every instance archives its
//! WAL into a repository of its own on its host ([`config`]), takes base backups as
//! operations ([`jobs`], [`ops`]), publishes the window a restore can reach ([`window`]),
//! and a database can be restored to any second of it without touching its neighbours
//! ([`scratch`]).

pub mod config;
pub mod database;
pub mod drill;
pub mod instance_restore;
pub mod jobs;
pub mod ops;
pub mod schedule;
pub mod scratch;
pub mod sets;
pub mod window;
