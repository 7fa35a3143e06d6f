//! REST models of the dbaas API and a typed client for it.
//!
//! The API crate serialises exactly these types (with the `openapi` feature they also carry
//! their OpenAPI schemas), so the provider and the tests can never drift from the server.

pub mod client;
pub use client::{reads, refresh};
pub mod duration;
pub mod models;
pub mod names;

pub use client::{Client, ClientError};
pub use models::*;
