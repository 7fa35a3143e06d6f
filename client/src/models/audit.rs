//! The audit log: every mutating request, who made it and how it ended.

#[allow(unused_imports)]
use super::prelude::*;

/// One mutating request (`POST`, `PATCH`, `PUT`, `DELETE`), recorded after its answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditEntry {
    /// Increasing with time; the list is newest first.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `admin-token:<id>`, `tenant-token:<tenant>:<id>`, or `anonymous` (refused before
    /// authentication).
    pub actor: String,
    /// The caller's tenant (none for admins and anonymous callers).
    pub tenant: Option<String>,
    /// Method and route, e.g. `POST /v1/databases/{id}/backups`.
    pub action: String,
    /// The request's path.
    pub target: Option<String>,
    pub request_id: Option<String>,
    pub status_code: u16,
}
