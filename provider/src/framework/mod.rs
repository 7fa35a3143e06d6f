//! A small provider framework: each resource is one file implementing [`Resource`] (or
//! [`DataSource`], [`EphemeralResource`]) with a [`Schema`]; the server turns protocol calls
//! into calls on them, and the generic planner applies RequiresReplace / UseStateForUnknown.

pub mod diag;
pub mod plan;
pub mod resource;
pub mod schema;
pub mod server;

pub use diag::{Diags, Path};
pub use resource::{Ctx, DataSource, EphemeralResource, Opened, Private, Resource};
pub use schema::{Attr, Schema};
