//! Sessions inside a tenant's database, opened as that database's own admin role.
//!
//! A tenant owns its database and schema `public`: it can define functions, operators,
//! triggers, index expressions and set `search_path`. Whatever the service runs in there
//! (access-model grants, extensions, drift reads, VACUUM/ANALYZE/REINDEX) therefore runs as
//! the tenant's admin login: any tenant code it reaches runs with the tenant's own privileges,
//! never the service's. `SET ROLE` would not do: tenant code could `RESET ROLE`.

use sqlx::PgConnection;

use super::conn::Target;
use super::record::{CredentialRow, DatabaseRow};
use crate::crypto::MasterKey;
use dbaas_engine::OpError;

/// Connects to the tenant database as its admin role. The stored password is tried first,
/// then a rotation's pending one (a rotation may be half-way: applied, not yet recorded).
pub async fn connect(
    target: &Target,
    key: &MasterKey,
    db: &DatabaseRow,
    creds: &[CredentialRow],
) -> Result<PgConnection, OpError> {
    let names = db.physical();
    let admin = creds
        .iter()
        .find(|c| c.kind == dbaas_client::CredentialKind::Static && c.access == dbaas_client::Access::Admin)
        .ok_or_else(|| OpError::permanent("missing_credential", "no stored admin credential for this database"))?;
    let mut candidates = vec![&admin.password_enc];
    if let Some(p) = &admin.pending_password_enc {
        candidates.push(p);
    }
    let mut last = None;
    for enc in candidates {
        let password = key.decrypt(enc, &admin.context())?;
        match target.as_login(&admin.role_name, &password).connect(&names.database).await {
            Ok(c) => return Ok(c),
            Err(e) if e.code == "28P01" => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(OpError::permanent(
        "admin_login_failed",
        format!(
            "cannot log in to {} as {}: {} (was its password changed outside the service? reconciling the database \
             re-applies it)",
            names.database,
            admin.role_name,
            last.map(|e| e.message).unwrap_or_default()
        ),
    ))
}
