//! Managed instances: PostgreSQL clusters this service creates and runs on registered hosts.
//!
//! Everything on the host goes through the host's [`Executor`] as argument vectors (no shell),
//! as the `postgres` system user. Each operation is a sequence of idempotent steps that
//! looks before it acts, so an attempt cut short (API killed, host rebooted) is resumed by the
//! next one; a provisioning that fails for good removes what it made.
//!
//! On the host an instance owns one directory, `<data_root>/<name>-<id8>`:
//! `pgdata/` (the cluster, with our `dbaas.conf` include, `pg_hba.conf` and TLS files),
//! `run/` (its unix socket) and `server.log`.

pub mod admission;
pub mod certs;
pub mod health;
pub mod jobs;
pub mod node;
pub mod ops;
pub mod settings;
pub mod tls_probe;

use crate::ops::job::Job;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::hosts::executor::ExecError;
use crate::ops::{queue, OpError};

/// The login the service creates in each managed cluster and uses for everything.
pub const SERVICE_ADMIN: &str = "dbaas_admin";

impl From<ExecError> for OpError {
    fn from(e: ExecError) -> Self {
        match &e {
            ExecError::Unreachable(_) => OpError::retryable("host_unreachable", e.to_string()),
            ExecError::Timeout(_) => OpError::retryable("host_timeout", e.to_string()),
            ExecError::PortUnavailable(_) => OpError::retryable("port_in_use", e.to_string()),
            ExecError::NotReaped(_) => OpError::retryable("server_not_reaped", e.to_string()),
            ExecError::HostKeyMismatch(_) => OpError::permanent("host_key_mismatch", e.to_string()),
            ExecError::Failed { .. } => OpError::permanent("host_command_failed", e.to_string()),
            ExecError::Spawn { .. } | ExecError::Invalid(_) => {
                OpError::permanent("host_command_invalid", e.to_string())
            }
        }
    }
}

/// Enqueues an operation on an instance inside the caller's transaction and makes it the
/// instance's latest (the one that decides its status).
pub async fn enqueue(tx: &mut Transaction<'_, Postgres>, instance: Uuid, job: Job) -> Result<Uuid, sqlx::Error> {
    let op = queue::enqueue(tx, &job, "instance", instance, None).await?;
    sqlx::query("UPDATE instances SET last_operation_id = $2 WHERE id = $1")
        .bind(instance)
        .bind(op.id)
        .execute(&mut **tx)
        .await?;
    Ok(op.id)
}
