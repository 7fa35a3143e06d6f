//! Ephemeral resource `dbaas_lease`: a short-lived login that never lands in state. It is
//! created when Terraform opens it, expires by itself (VALID UNTIL + the service's reaper),
//! and is revoked early when Terraform closes it.

use std::time::Duration;

use dbaas_client::CreateLease;

use super::common::{field_paths, wait_op};
use crate::framework::{model, Ctx, Diags, Field, Path, Private, Schema, TypedEphemeralResource};

pub struct Lease;

model! {
    /// `dbaas_lease` as Terraform holds it (only while it runs).
    pub struct LeaseModel {
        database_id: Field<String> => required("Id of the database (e.g. `dbaas_database.x.id`)."),
        access: Field<String> => required("`read`, `write` or `admin`."),
        ttl: Field<String> => optional("Lifetime such as `15m` (10s to 30d; default 15m)."),
        revoke_on_close: Field<bool> => optional("Revoke as soon as Terraform is done with it (default false: it lives for its ttl)."),
        username: Field<String> => computed("Login name."),
        password: Field<String> => computed("Password.").sensitive(),
        uri: Field<String> => computed("Connection URI (`sslmode=require`).").sensitive(),
        expires_at: Field<String> => computed("RFC 3339 expiry."),
    }
}

#[tonic::async_trait]
impl TypedEphemeralResource for Lease {
    type Model = LeaseModel;

    fn type_name(&self) -> &'static str {
        "dbaas_lease"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            "A temporary login for one database at one access level, valid for `ttl`; never stored in state or plan.",
            LeaseModel::attrs(),
        )
    }

    fn validate(&self, c: &LeaseModel, diags: &mut Diags) {
        super::common::check_access(c.access.as_str(), Path::attr(LeaseModel::access), diags);
        if let Some(t) = c.ttl.as_str() {
            let at = || Path::attr(LeaseModel::ttl);
            match crate::util::parse_duration(t) {
                Ok(d) if (10..=30 * 86_400).contains(&d.as_secs()) => {}
                Ok(_) => diags.error_at(at(), "Invalid ttl", format!("{t:?}: must be between 10s and 30d")),
                Err(m) => diags.error_at(at(), "Invalid ttl", m),
            }
        }
    }

    async fn open(&self, ctx: &Ctx, c: &LeaseModel, diags: &mut Diags) -> Option<(LeaseModel, Private)> {
        let client = ctx.client(diags).await?;
        let db: uuid::Uuid = match c.database_id.as_str()?.parse() {
            Ok(u) => u,
            Err(_) => {
                diags.error_at(Path::attr(LeaseModel::database_id), "Invalid database id", "not a database id");
                return None;
            }
        };
        let req =
            CreateLease { access: c.access.as_str()?.parse().ok()?, ttl: c.ttl.as_str().unwrap_or("15m").to_string() };
        let acc = match client.create_lease(db, &req).await {
            Ok(a) => a,
            Err(e) => {
                diags.api_error("Creating the lease", &e, &field_paths(&[LeaseModel::ttl, LeaseModel::access]));
                return None;
            }
        };
        if let Some(op) = &acc.operation {
            if !wait_op(&client, op, Duration::from_secs(120), "Creating the lease", diags).await {
                return None;
            }
        }
        let cred = acc.credential;
        let mut private = Private::default();
        private.set("database_id", db.to_string());
        private.set("lease_id", cred.id.to_string());
        if c.revoke_on_close.get().unwrap_or(false) {
            private.set("revoke_on_close", "true");
        }
        let state = LeaseModel {
            username: Field::str(&cred.username),
            password: Field::str(&cred.password),
            uri: Field::str(&cred.uri),
            expires_at: cred.expires_at.map(|e| e.to_rfc3339()).into(),
            ..c.clone()
        };
        Some((state, private))
    }

    async fn close(&self, ctx: &Ctx, private: &Private, diags: &mut Diags) {
        if private.get("revoke_on_close") != Some("true") {
            return;
        }
        let Some(client) = ctx.client(diags).await else { return };
        let (Some(db), Some(lease)) = (
            private.get("database_id").and_then(|s| s.parse().ok()),
            private.get("lease_id").and_then(|s| s.parse().ok()),
        ) else {
            return;
        };
        if let Err(e) = client.revoke_lease(db, lease).await {
            diags.api_error("Revoking the lease", &e, &[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_schema() {
        crate::framework::model::assert_matches_schema::<LeaseModel>(&TypedEphemeralResource::schema(&Lease));
    }
}
