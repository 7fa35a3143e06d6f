//! Refreshes of many databases of one tenant, read from a snapshot of the tenant.
//!
//! A refresh (Terraform's `ReadResource`) of one database is a [`Client::read_database`],
//! coalesced with the reads made at the same moment. When one process refreshes many
//! databases of a tenant (a plan of a large configuration), the [`SNAPSHOT_AFTER`]th read
//! starts reading the whole tenant in pages of 100 in the background (records, stored drift,
//! credentials); each later refresh of a database found there takes its entry instead of
//! asking the API. A configuration of a few databases never triggers it, so a tenant's
//! other databases are read only for plans that refresh many of them.
//!
//! Freshness: a snapshot is as fresh as a refresh made at its moment, which is what a plan
//! shows anyway; entries older than [`SNAPSHOT_MAX_AGE`] are not used, and each entry is
//! taken once, so refreshing the same database again asks the API. Only refreshes use
//! snapshots: the reads after a create or update ([`Client::read_database`]) never do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Client, ClientError};
use crate::models::{Database, List};

/// Refreshes of one tenant's databases in one process before its snapshot is read.
pub const SNAPSHOT_AFTER: usize = 50;
/// How long a snapshot's entries serve refreshes.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(60);

/// Per tenant: refreshes counted, and the snapshot once started. Shared by a client's clones.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    tenants: Mutex<HashMap<String, Tenant>>,
}

#[derive(Debug, Default)]
struct Tenant {
    refreshes: usize,
    started: Option<Instant>,
    entries: HashMap<Uuid, Database>,
}

impl Snapshots {
    /// The snapshot's entry for `id` (taken), or None and whether to start the snapshot.
    fn take_or_count(&self, tenant: &str, id: Uuid) -> (Option<Database>, bool) {
        let mut all = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let t = all.entry(tenant.to_string()).or_default();
        if t.started.is_some_and(|at| at.elapsed() > SNAPSHOT_MAX_AGE) {
            t.entries.clear();
        } else if let Some(db) = t.entries.remove(&id) {
            return (Some(db), false);
        }
        t.refreshes += 1;
        let start = t.refreshes >= SNAPSHOT_AFTER && t.started.is_none();
        if start {
            t.started = Some(Instant::now());
        }
        (None, start)
    }

    fn add(&self, tenant: &str, items: Vec<Database>) {
        let mut all = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let t = all.entry(tenant.to_string()).or_default();
        if t.started.is_some_and(|at| at.elapsed() <= SNAPSHOT_MAX_AGE) {
            // Only whole reads: an item without its credentials is no refresh.
            t.entries.extend(items.into_iter().filter(|d| d.credentials.is_some()).map(|d| (d.id, d)));
        }
    }
}

impl Client {
    /// A refresh of database `id` of `tenant`: like [`Client::read_database`], but taken from
    /// the tenant's snapshot once this process has refreshed many of its databases (see the
    /// module's documentation).
    pub async fn refresh_database(&self, tenant: &str, id: Uuid) -> Result<Option<Database>, ClientError> {
        // Tenant names are slugs; anything else (a hand-edited state) is read the plain way.
        let slug = crate::names::validate_tenant_name(tenant).is_ok();
        if self.fresh_drift() || !slug {
            return self.read_database(id).await;
        }
        let (found, start) = self.snapshots().take_or_count(tenant, id);
        if let Some(db) = found {
            return Ok(Some(db));
        }
        if start {
            let (client, tenant) = (self.clone(), tenant.to_string());
            tokio::spawn(async move { client.read_snapshot(&tenant).await });
        }
        self.read_database(id).await
    }

    /// Reads the tenant's databases page by page into its snapshot; a failed page ends it
    /// (refreshes then go on asking the API).
    async fn read_snapshot(&self, tenant: &str) {
        let first = format!("/v1/databases?tenant={tenant}&include=drift,credentials&limit=100");
        let mut path = first.clone();
        while let Ok(page) = self.get::<List<Database>>(&path).await {
            self.snapshots().add(tenant, page.items);
            match page.next_cursor {
                Some(cursor) => path = format!("{first}&cursor={cursor}"),
                None => return,
            }
        }
    }
}
