//! What an operation on a database loads before it touches the instance.

use crate::catalog::conn::InstanceTarget;
pub use dbaas_store::databases::*;
use dbaas_store::instances::InstanceRow;
use uuid::Uuid;

/// What an operation on a database needs: its record, its instance, and how to reach it.
pub async fn for_operation(
    db: &sqlx::PgPool,
    key: &crate::crypto::MasterKey,
    id: Uuid,
) -> Result<(DatabaseRow, InstanceRow, super::Target), dbaas_engine::OpError> {
    use dbaas_engine::OpError;
    let row = load(db, id).await?.ok_or_else(|| OpError::permanent("not_found", "the database record is gone"))?;
    let inst = load_instance(db, row.instance_id)
        .await?
        .ok_or_else(|| OpError::permanent("not_found", "the instance record is gone"))?;
    let target = inst.target(key)?;
    Ok((row, inst, target))
}
