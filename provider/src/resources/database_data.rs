//! Data source `dbaas_database`: look a database up by id or tenant/name.

use std::collections::BTreeMap;

use crate::cty::{Type, Value};
use crate::framework::{Attr, Ctx, DataSource, Diags, Path, Schema};

pub struct DatabaseData;

#[tonic::async_trait]
impl DataSource for DatabaseData {
    fn type_name(&self) -> &'static str {
        "dbaas_database"
    }

    fn schema(&self) -> Schema {
        let s = Type::String;
        let mut attrs = vec![
            Attr::optional_computed("id", s.clone(), "Database id (or give tenant and name)."),
            Attr::optional_computed("tenant", s.clone(), "Tenant (defaults to the token's)."),
            Attr::optional_computed("name", s.clone(), "Database name."),
        ];
        for (n, d) in [
            ("instance", "Instance holding it."),
            ("mode", "`standard` or `protected`."),
            ("physical_name", "Name on the instance."),
            ("environment", "Environment."),
            ("host", "Host clients connect to."),
            ("status", "Status in the service."),
            ("read_role", "Read role."),
            ("write_role", "Write role."),
            ("admin_role", "Admin role."),
        ] {
            attrs.push(Attr::computed(n, s.clone(), d));
        }
        attrs.push(Attr::computed("port", Type::Number, "Port."));
        attrs.push(Attr::computed("connection_limit", Type::Number, "Connection limit."));
        attrs.push(Attr::computed("extensions", Type::list(s.clone()), "Installed extensions."));
        for n in ["read_password", "write_password", "admin_password", "read_uri", "write_uri", "admin_uri"] {
            attrs.push(Attr::computed(n, s.clone(), "Credential (sensitive).").sensitive());
        }
        Schema::new("Reads an existing database and its credentials.", attrs)
    }

    fn validate(&self, c: &Value, diags: &mut Diags) {
        if c.get("id").is_null() && c.get("name").is_null() {
            diags.error_at(
                Path::attr("name"),
                "Missing lookup key",
                "set `id`, or `name` (with `tenant` for admin tokens)",
            );
        }
    }

    async fn read(&self, ctx: &Ctx, c: &Value, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let found = if let Some(id) = c.get("id").as_str() {
            match id.parse() {
                Ok(u) => client.get_database(u).await,
                Err(_) => {
                    diags.error_at(Path::attr("id"), "Invalid id", "not a database id");
                    return None;
                }
            }
        } else {
            let name = c.get("name").as_str()?;
            let tenant = match c.get("tenant").as_str() {
                Some(t) => t.to_string(),
                None => match client.list_tenants().await {
                    Ok(ts) if ts.len() == 1 => ts[0].name.clone(),
                    _ => {
                        diags.error_at(Path::attr("tenant"), "Missing tenant", "admin tokens must set `tenant`");
                        return None;
                    }
                },
            };
            client.find_database(&tenant, name).await
        };
        let db = match found {
            Ok(db) => db,
            Err(e) => {
                diags.api_error("Looking up the database", &e, &[]);
                return None;
            }
        };
        let creds = match client.list_credentials(db.id).await {
            Ok(c) => c,
            Err(e) => {
                diags.api_error("Reading credentials", &e, &[]);
                return None;
            }
        };
        let m: BTreeMap<String, Value> =
            super::common::database_values(&db, &creds).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Some(Value::Map(m))
    }
}
