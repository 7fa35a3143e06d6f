//! A small provider framework: each resource is one file implementing [`TypedResource`] (or
//! [`TypedDataSource`], [`TypedEphemeralResource`]) over a typed model declared with
//! [`model!`] and a [`Schema`] built from it; the server turns protocol calls into calls on
//! them, and the generic planner applies RequiresReplace / UseStateForUnknown.

pub mod diag;
pub mod model;
pub mod model_macro;
pub mod plan;
pub mod resource;
pub mod schema;
pub mod server;
pub mod typed;

pub use diag::{Diags, Path};
pub use model::{Field, List, Map};
pub(crate) use model_macro::model;
pub use resource::{Ctx, Op, Private, Timeouts};
pub use schema::Schema;
pub use typed::{TypedDataSource, TypedEphemeralResource, TypedResource};
