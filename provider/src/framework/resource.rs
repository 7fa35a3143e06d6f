//! What the server calls on a resource, data source or ephemeral resource (untyped: cty
//! values in and out), the resources' context, private state and timeouts. Resources
//! implement the typed traits of `typed.rs`, which provide these.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dbaas_client::Client;
use tokio::sync::RwLock;

use super::diag::{Diags, Path};
use super::model::Field;
use super::model_macro::model;
use super::schema::Schema;
use crate::cty::Value;

/// What resources get: the configured API client.
#[derive(Clone, Default)]
pub struct Ctx {
    client: Arc<RwLock<Option<Client>>>,
}

impl Ctx {
    pub async fn set_client(&self, c: Client) {
        *self.client.write().await = Some(c);
    }
    /// The API client, or an error diagnostic when the provider is not configured.
    pub async fn client(&self, diags: &mut Diags) -> Option<Client> {
        let c = self.client.read().await.clone();
        if c.is_none() {
            diags.error(
                "Provider not configured",
                "the dbaas provider has no usable endpoint/token (see the provider configuration diagnostics)",
            );
        }
        c
    }
}

/// Private state kept by Terraform next to the resource (never shown): a small JSON map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Private(pub BTreeMap<String, String>);

impl Private {
    pub fn decode(bytes: &[u8]) -> Self {
        if bytes.is_empty() {
            return Self::default();
        }
        Self(serde_json::from_slice(bytes).unwrap_or_default())
    }
    pub fn encode(&self) -> Vec<u8> {
        if self.0.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.0).unwrap_or_default()
        }
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    pub fn set(&mut self, k: &str, v: impl Into<String>) {
        self.0.insert(k.to_string(), v.into());
    }
    pub fn remove(&mut self, k: &str) {
        self.0.remove(k);
    }
}

/// Reads `timeouts.<which>` of any resource's configuration (the server checks all three
/// for every resource); resources use [`Field<Timeouts>::limit`](Timeouts) on their model.
pub fn timeout(config: &Value, which: &str, diags: &mut Diags) -> Duration {
    parse_limit(config.get("timeouts").get(which).as_str(), which, diags)
}

/// A timeout (default 10 minutes), reporting a bad value at `timeouts.<which>`.
fn parse_limit(t: Option<&str>, which: &str, diags: &mut Diags) -> Duration {
    let default = Duration::from_secs(600);
    match t {
        None => default,
        Some(t) => match crate::util::parse_duration(t) {
            Ok(d) => d,
            Err(m) => {
                diags.error_at(Path::attr("timeouts").then(which), "Invalid timeout", m);
                default
            }
        },
    }
}

model! {
    /// The `timeouts { create, update, delete }` block (see `Schema::with_timeouts`).
    pub struct Timeouts {
        create: Field<String> => optional(TIMEOUT_DESCRIPTION),
        update: Field<String> => optional(TIMEOUT_DESCRIPTION),
        delete: Field<String> => optional(TIMEOUT_DESCRIPTION),
    }
}

const TIMEOUT_DESCRIPTION: &str = "How long to wait, e.g. `10m` or `90s` (default 10m).";

/// Which operation a timeout is for.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Field<Timeouts> {
    /// How long `op` may take (default 10 minutes); a bad value is reported at its path.
    pub fn limit(&self, op: Op, diags: &mut Diags) -> Duration {
        let t = self.known();
        let (which, v) = match op {
            Op::Create => (Timeouts::create, t.map(|t| &t.create)),
            Op::Update => (Timeouts::update, t.map(|t| &t.update)),
            Op::Delete => (Timeouts::delete, t.map(|t| &t.delete)),
        };
        parse_limit(v.and_then(Field::as_str), which, diags)
    }
}

/// The provider block: its schema, checks and configuration (the client every resource
/// uses). Registered with the server like the resources, so the framework names no provider
/// of its own.
#[tonic::async_trait]
pub trait ProviderConfig: Send + Sync {
    fn schema(&self) -> Schema;
    /// Plan-time checks of the provider block.
    fn validate(&self, config: &Value, diags: &mut Diags);
    /// The client for this configuration, or None with the reasons in `diags`.
    async fn configure(&self, config: &Value, diags: &mut Diags) -> Option<dbaas_client::Client>;
}

#[tonic::async_trait]
pub trait Resource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Plan-time checks of the configuration (values may be unknown).
    fn validate(&self, _config: &Value, _diags: &mut Diags) {}
    /// Adjusts the generic plan (e.g. values that become unknown on a trigger).
    async fn modify_plan(
        &self,
        _ctx: &Ctx,
        _prior: &Value,
        _planned: &mut Value,
        _config: &Value,
        _private: &Private,
        _diags: &mut Diags,
    ) {
    }
    async fn create(
        &self,
        ctx: &Ctx,
        planned: &Value,
        config: &Value,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<Value>;
    /// `None`: the object is gone (removed from state, so the next plan creates it).
    async fn read(&self, ctx: &Ctx, state: &Value, private: &mut Private, diags: &mut Diags) -> Option<Value>;
    async fn update(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        config: &Value,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<Value>;
    async fn delete(&self, ctx: &Ctx, prior: &Value, private: &mut Private, diags: &mut Diags);
    /// Import by the id the user gives (`terraform import`).
    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<Value>;
}

#[tonic::async_trait]
pub trait DataSource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value, _diags: &mut Diags) {}
    async fn read(&self, ctx: &Ctx, config: &Value, diags: &mut Diags) -> Option<Value>;
}

/// What opening an ephemeral resource yields.
pub struct Opened {
    pub state: Value,
    /// Handed back to `close`, which Terraform calls once it is done with the value.
    pub private: Private,
}

#[tonic::async_trait]
pub trait EphemeralResource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value, _diags: &mut Diags) {}
    async fn open(&self, ctx: &Ctx, config: &Value, diags: &mut Diags) -> Option<Opened>;
    async fn close(&self, ctx: &Ctx, private: &Private, diags: &mut Diags);
}
