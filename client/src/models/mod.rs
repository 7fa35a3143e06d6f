//! Request and response bodies of the `/v1` API, one file per area.

mod audit;
mod backups;
mod common;
mod databases;
mod hosts;
mod instances;
mod maintenance;
mod metrics;
mod oidc;
mod operations;
mod recovery;
mod stored;
mod tenants;

pub use audit::*;
pub use backups::*;
pub use common::*;
pub use databases::*;
pub use hosts::*;
pub use instances::*;
pub use maintenance::*;
pub use metrics::*;
pub use oidc::*;
pub use operations::*;
pub use recovery::*;
pub use stored::UnknownValue;
pub use tenants::*;

/// What every model file needs.
mod prelude {
    pub(crate) use std::collections::BTreeMap;

    pub(crate) use chrono::{DateTime, Utc};
    pub(crate) use serde::{Deserialize, Serialize};
    #[cfg(feature = "openapi")]
    pub(crate) use utoipa::ToSchema;
    pub(crate) use uuid::Uuid;
}
