//! dbaas-managed: managed instances, the PostgreSQL clusters this service creates and runs on
//! registered hosts: admission (placement, ports, settings), provisioning and the instance
//! operations, server certificates, health checks, and the routing proxy in front of them.
//!
//! May use: `dbaas-domain` (state, catalog connections, enqueueing), `dbaas-hosts`,
//! `dbaas-store`, `dbaas-engine`, `dbaas-crypto`.
//! Must never: serve HTTP, or touch a database's contents (that is the catalog's, through its
//! connections).
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
pub mod pitr;
pub mod proxy;
pub mod server;
pub mod settings;
pub mod tls_probe;

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use dbaas_client::OperationKind;
use dbaas_domain::operation as queue;
use dbaas_engine::Payload;

/// The login the service creates in each managed cluster and uses for everything.
pub const SERVICE_ADMIN: &str = "dbaas_admin";

/// Enqueues an operation on an instance inside the caller's transaction and makes it the
/// instance's latest (the one that decides its status).
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    instance: Uuid,
    job: &(impl Payload<OperationKind> + Sync + ?Sized),
) -> Result<Uuid, sqlx::Error> {
    let op = queue::enqueue(tx, job, "instance", instance, None).await?;
    sqlx::query("UPDATE instances SET last_operation_id = $2 WHERE id = $1")
        .bind(instance)
        .bind(op.id)
        .execute(&mut **tx)
        .await?;
    Ok(op.id)
}
