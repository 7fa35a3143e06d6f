//! Backups of one database: sealed (encrypted and authenticated) on the API host, kept in a
//! backup store. This is the storage and sealing layer the backup, restore and verify
//! operations build on.

pub mod lifecycle;
pub mod policy;

pub use dbaas_backup_store::{filesystem, s3, seal, store};

use anyhow::{bail, Context, Result};
use tokio::io::AsyncWrite;
use uuid::Uuid;

use crate::crypto::MasterKey;

/// Writes a succeeded backup's dump to `out`, unsealed: what `dbaas-api backup-open` prints
/// for a restore by hand. Every chunk is authenticated; a tampered object stops with an error.
pub async fn open_to<W: AsyncWrite + Unpin>(db: &sqlx::PgPool, key: &MasterKey, id: Uuid, out: &mut W) -> Result<()> {
    let backup = dbaas_store::backups::backup(db, id).await?.with_context(|| format!("no backup {id}"))?;
    if backup.status != dbaas_client::BackupStatus::Succeeded {
        bail!("backup {id} is {:?}: only a succeeded backup is complete", backup.status);
    }
    let store = dbaas_store::backups::store(db, backup.store_id).await?.context("the backup's store is gone")?;
    let store = store::Store::from_row(&store, key)?;
    let data_key = seal::DataKey::unwrap_with(key, &backup.data_key_enc, id)?;
    let mut object = store.open(&backup.object_key, backup.object_version.as_deref()).await?;
    let sha = seal::open(&data_key, id, &mut object, out).await?;
    if backup.sha256.as_deref() != Some(sha.as_str()) {
        bail!("the stored object's SHA-256 {sha} differs from the recorded one");
    }
    Ok(())
}
