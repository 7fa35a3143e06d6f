//! Problems, environments and lists: shapes every area uses.

#[allow(unused_imports)]
use super::prelude::*;
#[allow(unused_imports)]
use super::*;

/// RFC 9457 problem details, as every error response carries them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Problem {
    /// A URI naming the problem kind.
    #[serde(rename = "type", default)]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`.
    pub code: String,
    #[serde(default)]
    pub detail: String,
    /// Per-field errors for validation problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FieldError {
    /// JSON pointer-ish path of the offending field, e.g. `name` or `placement.environment`.
    pub field: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Preprod,
    Prod,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Preprod => "preprod",
            Self::Prod => "prod",
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sandbox" => Ok(Self::Sandbox),
            "preprod" => Ok(Self::Preprod),
            "prod" => Ok(Self::Prod),
            other => Err(format!("unknown environment {other:?} (sandbox, preprod, prod)")),
        }
    }
}

/// A list answer: `{"items": [...], "next_cursor": "..."}`. Lists are paged (`?limit=`,
/// default 100, at most 1000); `next_cursor`, present when more items follow, is passed as
/// `?cursor=` for the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct List<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// A single, whole page.
    pub fn all(items: Vec<T>) -> Self {
        Self { items, next_cursor: None }
    }
}
