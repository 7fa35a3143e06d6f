//! Helpers shared by resources: waiting on operations, and the database's state shape.

use std::time::Duration;

use dbaas_client::{Access, Client, Credential, Database, Operation, OperationStatus};

use crate::cty::Value;
use crate::framework::Diags;

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

/// Computed attributes of a database, from the API's record and its credentials.
pub fn database_values(db: &Database, creds: &[Credential]) -> Vec<(&'static str, Value)> {
    let cred = |a: Access| creds.iter().find(|c| c.access == a && c.kind == dbaas_client::CredentialKind::Static);
    let pw = |a: Access| Value::opt_str(cred(a).map(|c| c.password.clone()));
    let uri = |a: Access| Value::opt_str(cred(a).map(|c| c.uri.clone()));
    vec![
        ("id", Value::str(db.id.to_string())),
        ("name", Value::str(&db.name)),
        ("tenant", Value::str(&db.tenant)),
        ("instance", Value::str(&db.instance)),
        ("mode", Value::str(db.mode.as_str())),
        ("extensions", Value::strings(db.extensions.clone())),
        ("connection_limit", Value::int(i64::from(db.connection_limit))),
        ("physical_name", Value::str(&db.physical_name)),
        ("environment", Value::str(db.environment.as_str())),
        ("host", Value::str(&db.host)),
        ("port", Value::int(i64::from(db.port))),
        ("status", Value::str(db.status.as_str())),
        ("read_role", Value::str(&db.roles.read)),
        ("write_role", Value::str(&db.roles.write)),
        ("admin_role", Value::str(&db.roles.admin)),
        ("read_password", pw(Access::Read)),
        ("write_password", pw(Access::Write)),
        ("admin_password", pw(Access::Admin)),
        ("read_uri", uri(Access::Read)),
        ("write_uri", uri(Access::Write)),
        ("admin_uri", uri(Access::Admin)),
    ]
}
