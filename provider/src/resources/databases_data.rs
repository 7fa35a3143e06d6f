//! Data source `dbaas_databases`: databases of a tenant and/or environment.

use crate::cty::{Type, Value};
use crate::framework::{Attr, Ctx, DataSource, Diags, Path, Schema};

pub struct DatabasesData;

fn item_type() -> Type {
    Type::object([
        ("id", Type::String),
        ("tenant", Type::String),
        ("name", Type::String),
        ("instance", Type::String),
        ("environment", Type::String),
        ("status", Type::String),
        ("mode", Type::String),
    ])
}

#[tonic::async_trait]
impl DataSource for DatabasesData {
    fn type_name(&self) -> &'static str {
        "dbaas_databases"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            "Lists databases visible to the token.",
            vec![
                Attr::optional("tenant", Type::String, "Only this tenant's (admin tokens)."),
                Attr::optional("environment", Type::String, "Only this environment."),
                Attr::computed("databases", Type::list(item_type()), "The databases, sorted by tenant and name."),
            ],
        )
    }

    fn validate(&self, c: &Value, diags: &mut Diags) {
        if let Some(e) = c.get("environment").as_str() {
            if e.parse::<dbaas_client::Environment>().is_err() {
                diags.error_at(
                    Path::attr("environment"),
                    "Invalid environment",
                    format!("{e:?}: use sandbox, preprod or prod"),
                );
            }
        }
    }

    async fn read(&self, ctx: &Ctx, c: &Value, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let mut q = Vec::new();
        if let Some(t) = c.get("tenant").as_str() {
            q.push(format!("tenant={t}"));
        }
        if let Some(e) = c.get("environment").as_str() {
            q.push(format!("environment={e}"));
        }
        match client.list_databases(&q.join("&")).await {
            Ok(list) => {
                let items = list
                    .iter()
                    .map(|d| {
                        Value::object([
                            ("id", Value::str(d.id.to_string())),
                            ("tenant", Value::str(&d.tenant)),
                            ("name", Value::str(&d.name)),
                            ("instance", Value::str(&d.instance)),
                            ("environment", Value::str(d.environment.as_str())),
                            ("status", Value::str(d.status.as_str())),
                            ("mode", Value::str(d.mode.as_str())),
                        ])
                    })
                    .collect();
                let mut v = c.clone();
                v.set("databases", Value::List(items));
                Some(v)
            }
            Err(e) => {
                diags.api_error("Listing databases", &e, &[("tenant", Path::attr("tenant"))]);
                None
            }
        }
    }
}
