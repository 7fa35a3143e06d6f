//! Ephemeral resource `dbaas_lease`: a short-lived login that never lands in state. It is
//! created when Terraform opens it, expires by itself (VALID UNTIL + the service's reaper),
//! and is revoked early when Terraform closes it.

use std::time::Duration;

use dbaas_client::{Access, CreateLease};

use super::common::wait_op;
use crate::cty::{Type, Value};
use crate::framework::{Attr, Ctx, Diags, EphemeralResource, Opened, Path, Private, Schema};

pub struct Lease;

#[tonic::async_trait]
impl EphemeralResource for Lease {
    fn type_name(&self) -> &'static str {
        "dbaas_lease"
    }

    fn schema(&self) -> Schema {
        let s = Type::String;
        Schema::new(
            "A temporary login for one database at one access level, valid for `ttl`; never stored in state or plan.",
            vec![
                Attr::required("database_id", s.clone(), "Id of the database (e.g. `dbaas_database.x.id`)."),
                Attr::required("access", s.clone(), "`read`, `write` or `admin`."),
                Attr::optional("ttl", s.clone(), "Lifetime such as `15m` (10s to 30d; default 15m)."),
                Attr::optional(
                    "revoke_on_close",
                    Type::Bool,
                    "Revoke as soon as Terraform is done with it (default false: it lives for its ttl).",
                ),
                Attr::computed("username", s.clone(), "Login name."),
                Attr::computed("password", s.clone(), "Password.").sensitive(),
                Attr::computed("uri", s.clone(), "Connection URI (`sslmode=require`).").sensitive(),
                Attr::computed("expires_at", s.clone(), "RFC 3339 expiry."),
            ],
        )
    }

    fn validate(&self, c: &Value, diags: &mut Diags) {
        if let Some(a) = c.get("access").as_str() {
            if a.parse::<Access>().is_err() {
                diags.error_at(
                    Path::attr("access"),
                    "Invalid access level",
                    format!("{a:?}: use read, write or admin"),
                );
            }
        }
        if let Some(t) = c.get("ttl").as_str() {
            match crate::util::parse_duration(t) {
                Ok(d) if (10..=30 * 86_400).contains(&d.as_secs()) => {}
                Ok(_) => {
                    diags.error_at(Path::attr("ttl"), "Invalid ttl", format!("{t:?}: must be between 10s and 30d"))
                }
                Err(m) => diags.error_at(Path::attr("ttl"), "Invalid ttl", m),
            }
        }
    }

    async fn open(&self, ctx: &Ctx, c: &Value, diags: &mut Diags) -> Option<Opened> {
        let client = ctx.client(diags).await?;
        let db: uuid::Uuid = match c.get("database_id").as_str()?.parse() {
            Ok(u) => u,
            Err(_) => {
                diags.error_at(Path::attr("database_id"), "Invalid database id", "not a database id");
                return None;
            }
        };
        let req = CreateLease {
            access: c.get("access").as_str()?.parse().ok()?,
            ttl: c.get("ttl").as_str().unwrap_or("15m").to_string(),
        };
        let acc = match client.create_lease(db, &req).await {
            Ok(a) => a,
            Err(e) => {
                diags.api_error(
                    "Creating the lease",
                    &e,
                    &[("ttl", Path::attr("ttl")), ("access", Path::attr("access"))],
                );
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
        if c.get("revoke_on_close").as_bool().unwrap_or(false) {
            private.set("revoke_on_close", "true");
        }
        let mut state = c.clone();
        state.set("username", Value::str(&cred.username));
        state.set("password", Value::str(&cred.password));
        state.set("uri", Value::str(&cred.uri));
        state.set("expires_at", Value::opt_str(cred.expires_at.map(|e| e.to_rfc3339())));
        Some(Opened { state, private })
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
