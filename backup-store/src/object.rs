//! What every store promises about an object, whichever kind it is: how a call fails, and
//! the retention an object can be written with.

use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    #[error("object {0} not found")]
    NotFound(String),
    #[error("the store is not usable: {0}")]
    Unusable(String),
    /// The store could not be reached or answered with a transient error: retry later.
    #[error("the store cannot be reached: {0}")]
    Unreachable(String),
    /// S3 refused to delete a version under Object Lock retention.
    #[error("the object is locked: {0}")]
    Locked(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Worth retrying later (the operation engine's retryable errors).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Io(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Governance,
    Compliance,
}

/// A retention date written with an object (Object Lock).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub mode: LockMode,
    pub until: DateTime<Utc>,
}
