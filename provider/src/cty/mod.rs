//! Terraform's value model (cty): types, values with null and unknown, and the msgpack and
//! JSON encodings of `DynamicValue`.

mod json;
mod msgpack;
mod types;
mod value;

pub use json::decode_json;
pub use msgpack::{decode, encode};
pub use types::Type;
pub use value::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct CodecError(pub String);
