//! What a host's proxy should route and admit, read from the state database: every
//! database of the host's managed instances that is not being deleted, with the logins that
//! may use it (static credentials and live leases) and the verifier each has on its
//! cluster (derived again from the stored password: see `MasterKey::scram_verifier`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use dbaas_client::{CredentialStatus, InstanceStatus};
use dbaas_domain::catalog::conn::{InstanceRow, INSTANCE_COLUMNS};
use dbaas_domain::catalog::record::{self, DatabaseRow, DATABASE_COLUMNS, DATABASE_FROM};
use dbaas_domain::state::AppState;
use dbaas_engine::OpError;
use dbaas_hosts::HostRecord;
use uuid::Uuid;

use super::config::{pool_size, Login, Route};

/// The routes and logins, the clusters' CAs (one bundle, in instance order) and the names
/// clients reach the proxy by.
pub struct Desired {
    pub routes: Vec<Route>,
    pub logins: Vec<Login>,
    pub server_cas: String,
    pub names: Vec<String>,
}

/// Settings of an instance that size its pools.
fn setting(inst: &InstanceRow, name: &str, default: u32) -> u32 {
    inst.settings.0.get(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

pub async fn load(state: &AppState, host: &HostRecord) -> Result<Desired, OpError> {
    let instances: Vec<InstanceRow> = sqlx::query_as(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.host_id = $1 AND i.kind = 'managed' \
         AND i.status NOT IN ('deleting', 'deleted', 'failed') ORDER BY i.id"
    ))
    .bind(host.id)
    .fetch_all(&state.db)
    .await?;
    let mut names = vec![host.instance_address(), "localhost".to_string(), "127.0.0.1".to_string()];
    let mut server_cas = String::new();
    let mut routed = Vec::new();
    for inst in &instances {
        if !names.contains(&inst.public_host) {
            names.push(inst.public_host.clone());
        }
        // An instance without its CA yet (being made) has no database to route.
        let (Some(ca), false) = (&inst.ca_cert, inst.status == InstanceStatus::Provisioning) else { continue };
        server_cas.push_str(ca.trim_end());
        server_cas.push('\n');
        routed.push(inst);
    }
    let ids: Vec<Uuid> = routed.iter().map(|i| i.id).collect();
    let databases: Vec<DatabaseRow> = sqlx::query_as(&format!(
        "SELECT {DATABASE_COLUMNS} FROM {DATABASE_FROM} WHERE d.instance_id = ANY($1) \
         AND d.status NOT IN ('deleting', 'deleted', 'retained') ORDER BY d.physical_name"
    ))
    .bind(&ids)
    .fetch_all(&state.db)
    .await?;
    let db_ids: Vec<Uuid> = databases.iter().map(|d| d.id).collect();
    let mut creds: BTreeMap<Uuid, Vec<record::CredentialRow>> = BTreeMap::new();
    for c in record::credentials_of(&state.db, &db_ids).await? {
        creds.entry(c.database_id).or_default().push(c);
    }
    let mut per_instance: HashMap<Uuid, u32> = HashMap::new();
    for d in &databases {
        *per_instance.entry(d.instance_id).or_default() += 1;
    }
    let mut routes = Vec::new();
    let mut logins = Vec::new();
    for d in &databases {
        let Some(inst) = routed.iter().find(|i| i.id == d.instance_id) else { continue };
        let mut users = Vec::new();
        for c in creds.get(&d.id).map(Vec::as_slice).unwrap_or_default() {
            // Pending: being made (the proxy may know it first: the cluster still decides).
            // Revoking or revoked: out of the proxy before anything else happens to it.
            if !matches!(c.status, CredentialStatus::Pending | CredentialStatus::Active) {
                continue;
            }
            let password = state.key.decrypt(&c.password_enc, &c.context())?;
            logins.push(Login { name: c.role_name.clone(), verifier: verifier(state, c, &password) });
            users.push(c.role_name.clone());
        }
        routes.push(Route {
            database: d.physical().database,
            server_host: inst.host.clone(),
            server_port: inst.port as u16,
            pool_mode: d.pool_mode,
            pool_size: pool_size(
                setting(inst, "max_connections", 100),
                setting(inst, "superuser_reserved_connections", 3),
                per_instance.get(&inst.id).copied().unwrap_or(1),
                d.connection_limit,
            ),
            users,
        });
    }
    Ok(Desired { routes, logins, server_cas, names })
}

/// The verifier of a credential's current password. Deriving one takes 4096 rounds of
/// PBKDF2, and every sync lists every login of the host: derived ones are kept per
/// (credential, stored ciphertext), which a rotation changes.
fn verifier(state: &AppState, c: &record::CredentialRow, password: &str) -> String {
    /// (credential, digest of its stored ciphertext) -> verifier.
    type Cache = Mutex<HashMap<(Uuid, Vec<u8>), String>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (c.id, dbaas_crypto::sha256(&c.password_enc));
    if let Some(v) = cache.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return v;
    }
    let v = state.key.scram_verifier(password, &c.context());
    if let Ok(mut m) = cache.lock() {
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(key, v.clone());
    }
    v
}
