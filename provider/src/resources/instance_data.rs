//! Data source `dbaas_instance`: an instance by name.

use std::collections::BTreeMap;

use crate::cty::{Type, Value};
use crate::framework::{Attr, Ctx, DataSource, Diags, Schema};

pub struct InstanceData;

#[tonic::async_trait]
impl DataSource for InstanceData {
    fn type_name(&self) -> &'static str {
        "dbaas_instance"
    }

    fn schema(&self) -> Schema {
        let s = Type::String;
        Schema::new(
            "Reads a registered instance (secrets are never returned).",
            vec![
                Attr::required("name", s.clone(), "Instance name."),
                Attr::computed("id", s.clone(), "Instance id."),
                Attr::computed("kind", s.clone(), "`external` or `managed`."),
                Attr::computed("status", s.clone(), "provisioning, ready, stopped, failed, deleting."),
                Attr::computed("host", s.clone(), "Host."),
                Attr::computed("port", Type::Number, "Port."),
                Attr::computed("public_host", s.clone(), "Host for clients."),
                Attr::computed("admin_user", s.clone(), "Admin login."),
                Attr::computed("sslmode", s.clone(), "TLS mode used by the service."),
                Attr::computed("ca_cert", s.clone(), "PEM CA certificate of the server (for verify-full), when known."),
                Attr::computed("environment", s.clone(), "Environment."),
                Attr::computed("labels", Type::map(s.clone()), "Labels."),
                Attr::computed("max_databases", Type::Number, "Capacity."),
                Attr::computed("allowed_extensions", Type::list(s.clone()), "Allowed extensions."),
                Attr::computed("server_version", s.clone(), "PostgreSQL version."),
                Attr::computed("database_count", Type::Number, "Databases on it."),
            ],
        )
    }

    async fn read(&self, ctx: &Ctx, c: &Value, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        match client.get_instance(c.get("name").as_str()?).await {
            Ok(i) => {
                let m: BTreeMap<String, Value> =
                    super::instance::instance_values(&i).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                Some(Value::Map(m))
            }
            Err(e) => {
                diags.api_error("Looking up the instance", &e, &[]);
                None
            }
        }
    }
}
