//! Helpers shared by resources: waiting on operations, attribute paths for API errors.

use std::time::Duration;

use dbaas_client::{Client, Operation, OperationStatus};

use crate::framework::{Diags, Path};

/// Waits for an operation; reports a failure or a timeout as an error diagnostic.
/// Returns true when it succeeded.
pub async fn wait_op(client: &Client, op: &Operation, limit: Duration, what: &str, diags: &mut Diags) -> bool {
    let done = match client.wait_operation(op.id, limit).await {
        Ok(o) => o,
        Err(e) => {
            diags.error(format!("{what}: lost track of operation {}", op.id), e.to_string());
            return false;
        }
    };
    match done.status {
        OperationStatus::Succeeded => true,
        OperationStatus::Queued | OperationStatus::Running => {
            let last =
                done.error.as_ref().map(|e| format!(" Last error: {} {}.", e.code, e.message)).unwrap_or_default();
            diags.error(
                format!("{what}: still running after {}", crate::util::format_duration(limit)),
                format!(
                    "Operation {} continues in the service.{last} The next `terraform apply` resumes waiting on it \
                     instead of starting again; raise the timeout in the `timeouts` block if this is expected.",
                    done.id
                ),
            );
            false
        }
        OperationStatus::Failed | OperationStatus::Cancelled => {
            let (code, msg) = done.error.as_ref().map(|e| (e.code.clone(), e.message.clone())).unwrap_or_default();
            let logs = client.operation_logs(done.id).await.unwrap_or_default();
            let tail: Vec<String> =
                logs.iter().rev().take(5).rev().map(|l| format!("  {} {}", l.level, l.message)).collect();
            diags.error(
                format!("{what}: operation {}", done.status.as_str()),
                format!("{code}: {msg}\nOperation {} log (last lines):\n{}", done.id, tail.join("\n")),
            );
            false
        }
    }
}

/// API fields named like attributes, mapped to those attributes' paths for `Diags::api_error`.
pub fn field_paths(names: &[&'static str]) -> Vec<(&'static str, Path)> {
    names.iter().map(|n| (*n, Path::attr(n))).collect()
}

/// Says so when a refresh asked for a live comparison got the stored one instead (the live
/// checks are rate limited per tenant): with how old that comparison is.
pub fn warn_if_stored_drift(db: &dbaas_client::Database, diags: &mut Diags) {
    let Some(drift) = db.drift.as_ref().filter(|d| d.stored_instead_of_fresh) else { return };
    let age = match drift.checked_at {
        Some(at) => {
            let secs = (chrono::Utc::now() - at).num_seconds().max(0);
            format!("{secs} s old (compared at {})", at.to_rfc3339())
        }
        None => "of unknown age (never compared yet)".to_string(),
    };
    diags.warn(
        format!("Drift of {} from the service's last comparison, not a live one", db.physical_name),
        format!(
            "fresh_drift asked for a live comparison, but live checks are limited per tenant (30 a minute) and \
             this one was refused; the stored comparison is used instead, {age}."
        ),
    );
}

/// An `access` argument (`read`, `write` or `admin`), diagnosed at `path` when invalid.
pub fn check_access(value: Option<&str>, path: crate::framework::Path, diags: &mut crate::framework::Diags) {
    if let Some(a) = value {
        if a.parse::<dbaas_client::Access>().is_err() {
            diags.error_at(path, "Invalid access level", format!("{a:?}: use read, write or admin"));
        }
    }
}
