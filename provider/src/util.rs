//! Small helpers shared by resources.

// One parser for the API and the provider: what plan-time checks accept, the API accepts.
pub use dbaas_client::duration::{format_duration, parse_duration};
