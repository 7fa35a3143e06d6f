//! `dbaas_database`: a database with its read/write/admin roles and credentials.

use std::collections::BTreeMap;

use dbaas_client::{
    Access, Client, CreateDatabase, Database as ApiDatabase, DatabaseMode, DatabaseStatus, Environment, Placement,
    UpdateDatabase,
};

use super::common::{database_values, wait_op};
use crate::cty::{Type, Value};
use crate::framework::resource::timeout;
use crate::framework::{Attr, Ctx, Diags, Path, Private, Resource, Schema};

pub struct Database;

const OP_KEY: &str = "operation_id";

fn field_paths() -> Vec<(&'static str, Path)> {
    ["name", "tenant", "instance", "placement", "mode", "extensions", "connection_limit"]
        .iter()
        .map(|f| (*f, Path::attr(f)))
        .collect()
}

#[tonic::async_trait]
impl Resource for Database {
    fn type_name(&self) -> &'static str {
        "dbaas_database"
    }

    fn schema(&self) -> Schema {
        let s = Type::String;
        let mut attrs = vec![
            Attr::computed("id", s.clone(), "Database id in the dbaas API.").keep(),
            Attr::required("name", s.clone(), "Database name within the tenant: lower-case letters, digits and `-`. The physical name is `<tenant>_<name>` (`_` cannot occur in names, so the mapping is injective).").replace(),
            Attr::optional_computed("tenant", s.clone(), "Tenant owning the database; defaults to the token's tenant (admin tokens must set it).").replace().keep(),
            Attr::optional_computed("instance", s.clone(), "Instance to create the database on; exclusive with `placement`. Computed when placement chooses.").replace().keep(),
            Attr::nested_object(
                "placement",
                vec![
                    Attr::required("environment", s.clone(), "`sandbox`, `preprod` or `prod`; placement never crosses environments."),
                    Attr::optional("labels", Type::map(s.clone()), "Labels the instance must carry."),
                ],
                "Let the service choose the least-loaded instance matching these; used when the database is created.",
            ),
            Attr::optional_computed("mode", s.clone(), "`standard` or `protected` (default: `protected` in prod). Destroying a protected database keeps it as `retained`; declaring it again re-adopts it with its data."),
            Attr::optional_computed("extensions", Type::list(s.clone()), "Extensions to install (must be allowed on the instance)."),
            Attr::optional_computed("connection_limit", Type::Number, "Maximum concurrent connections; -1 for no limit (default)."),
            Attr::optional("rotation_triggers", Type::map(s.clone()), "Per access level (`read`, `write`, `admin`): any value; changing a value rotates that role's password (adding a key only records it)."),
            Attr::computed("physical_name", s.clone(), "Database name on the instance.").keep(),
            Attr::computed("environment", s.clone(), "Environment of the instance.").keep(),
            Attr::computed("host", s.clone(), "Host clients connect to.").keep(),
            Attr::computed("port", Type::Number, "Port clients connect to.").keep(),
            Attr::computed("status", s.clone(), "Status in the service (`ready` once provisioned)."),
        ];
        for a in ["read", "write", "admin"] {
            let (role, pw, uri): (&'static str, &'static str, &'static str) = match a {
                "read" => ("read_role", "read_password", "read_uri"),
                "write" => ("write_role", "write_password", "write_uri"),
                _ => ("admin_role", "admin_password", "admin_uri"),
            };
            attrs.push(Attr::computed(role, s.clone(), "Login role name for this access level.").keep());
            attrs.push(Attr::computed(pw, s.clone(), "Password of the role.").sensitive().keep());
            attrs.push(Attr::computed(uri, s.clone(), "Connection URI (`sslmode=require`).").sensitive().keep());
        }
        Schema::new("A PostgreSQL database with `read`, `write` and `admin` roles whose privileges cover every object created later.", attrs)
            .with_timeouts(&["create", "update", "delete"])
    }

    fn validate(&self, c: &Value, diags: &mut Diags) {
        let tenant = c.get("tenant").as_str();
        if let Some(t) = tenant {
            if let Err(m) = dbaas_client::names::validate_tenant_name(t) {
                diags.error_at(Path::attr("tenant"), "Invalid tenant name", m);
            }
        }
        if let Some(n) = c.get("name").as_str() {
            if let Err(m) = dbaas_client::names::validate_database_name(tenant.unwrap_or(""), n) {
                diags.error_at(Path::attr("name"), "Invalid database name", m);
            }
        }
        // Unknown values (module inputs at validate time) decide nothing yet.
        let (inst, place) = (c.get("instance"), c.get("placement"));
        let known_set = |v: &Value| !v.is_null() && !v.is_unknown();
        if known_set(inst) && known_set(place) {
            diags.error_at(
                Path::attr("placement"),
                "Conflicting instance and placement",
                "set either `instance` or `placement`, not both",
            );
        }
        if inst.is_null() && place.is_null() {
            diags.error_at(
                Path::attr("instance"),
                "Missing instance or placement",
                "set `instance` (an instance name) or `placement { environment = … }`",
            );
        }
        if let Some(e) = place.get("environment").as_str() {
            if e.parse::<Environment>().is_err() {
                diags.error_at(
                    Path::attr("placement").then("environment"),
                    "Invalid environment",
                    format!("{e:?}: use sandbox, preprod or prod"),
                );
            }
        }
        if let Some(m) = c.get("mode").as_str() {
            if m != "standard" && m != "protected" {
                diags.error_at(Path::attr("mode"), "Invalid mode", format!("{m:?}: use standard or protected"));
            }
        }
        if let Some(list) = c.get("extensions").as_list() {
            for (i, e) in list.iter().enumerate() {
                if let Some(Err(m)) = e.as_str().map(dbaas_client::names::validate_extension_name) {
                    diags.error_at(Path::attr("extensions").index(i), "Invalid extension name", m);
                }
            }
        }
        if let Some(n) = c.get("connection_limit").as_i64() {
            if !(-1..=10_000).contains(&n) {
                diags.error_at(
                    Path::attr("connection_limit"),
                    "Invalid connection limit",
                    "use -1 (no limit) or 0-10000",
                );
            }
        }
        if let Some(m) = c.get("rotation_triggers").as_map() {
            for k in m.keys() {
                if k.parse::<Access>().is_err() {
                    diags.error_at(
                        Path::attr("rotation_triggers").key(k),
                        "Invalid access level",
                        format!("{k:?}: use read, write or admin"),
                    );
                }
            }
        }
    }

    async fn modify_plan(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &mut Value,
        config: &Value,
        _private: &Private,
        diags: &mut Diags,
    ) {
        if prior.is_null() {
            // Say at plan time that the instance does not exist. Only a warning: the same
            // configuration may create it (`instance = dbaas_instance.x.name` is known at plan
            // before the instance exists); if it does not, the create fails on `instance`
            // before anything is made.
            if let Some(name) = config.get("instance").as_str() {
                if let Some(client) = ctx.client(&mut Diags::default()).await {
                    if let Err(e) = client.get_instance(name).await {
                        if e.status() == Some(404) {
                            diags.warn_at(
                                Path::attr("instance"),
                                "Unknown instance",
                                format!("no instance named {name:?} is registered yet; the apply fails unless this configuration creates it"),
                            );
                        }
                    }
                }
            }
            return;
        }
        // A changed trigger rotates that password: its value is known only after apply.
        for a in Access::ALL {
            let key = a.as_str();
            if rotates(prior, planned, key) {
                planned.set(&format!("{key}_password"), Value::Unknown);
                planned.set(&format!("{key}_uri"), Value::Unknown);
            }
        }
    }

    async fn create(
        &self,
        ctx: &Ctx,
        planned: &Value,
        config: &Value,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let limit = timeout(config, "create", diags);
        let req = CreateDatabase {
            name: config.get("name").as_str()?.to_string(),
            tenant: config.get("tenant").as_str().map(str::to_string),
            instance: config.get("instance").as_str().map(str::to_string),
            placement: config.get("placement").as_map().map(|_| Placement {
                environment: config.get("placement").get("environment").as_str().and_then(|e| e.parse().ok()),
                labels: config.get("placement").get("labels").as_string_map().unwrap_or_default(),
            }),
            mode: config.get("mode").as_str().map(|m| {
                if m == "protected" {
                    DatabaseMode::Protected
                } else {
                    DatabaseMode::Standard
                }
            }),
            extensions: config.get("extensions").as_strings().unwrap_or_default(),
            connection_limit: config.get("connection_limit").as_i64().map(|n| n as i32),
        };
        let (id, op) = match client.create_database(&req).await {
            Ok(acc) => (acc.database.id, acc.operation),
            Err(e) if e.problem().is_some_and(|p| p.code == "already_exists") => {
                // Ours from an apply that timed out (still provisioning), or dropped by hand
                // (drift): resume or reconcile instead of failing or duplicating.
                let existing = find_existing(&client, &req, diags).await?;
                if matches!(existing.status, DatabaseStatus::Provisioning | DatabaseStatus::Updating) {
                    let op = client.get_operation(existing.last_operation_id?).await.ok();
                    (existing.id, op)
                } else if existing.drift.as_ref().is_some_and(|d| d.database_missing || !d.missing_roles.is_empty()) {
                    match client.reconcile_database(existing.id).await {
                        Ok(acc) => (existing.id, acc.operation),
                        Err(e) => {
                            diags.api_error("Recreating the database", &e, &field_paths());
                            return None;
                        }
                    }
                } else {
                    diags.error_at(
                        Path::attr("name"),
                        "Database already exists",
                        format!(
                            "{}/{} exists and is managed elsewhere; import it with `terraform import <address> {}/{}`",
                            existing.tenant, existing.name, existing.tenant, existing.name
                        ),
                    );
                    return None;
                }
            }
            Err(e) => {
                diags.api_error("Creating the database", &e, &field_paths());
                return None;
            }
        };
        if let Some(op) = op {
            private.set(OP_KEY, op.id.to_string());
            if !wait_op(&client, &op, limit, "Creating the database", diags).await {
                return None;
            }
            private.remove(OP_KEY);
        }
        let _ = planned;
        state_of(&client, id, config, diags).await
    }

    async fn read(&self, ctx: &Ctx, state: &Value, _private: &mut Private, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let id = state.get("id").as_str()?.parse().ok()?;
        match client.get_database(id).await {
            Ok(db) if matches!(db.status, DatabaseStatus::Deleted) => None,
            Ok(db) if db.drift.as_ref().is_some_and(|d| d.database_missing) => {
                diags.warn(
                    format!("Database {} was dropped outside Terraform", db.physical_name),
                    "It is gone from the instance; the next apply creates it again (empty).",
                );
                None
            }
            Ok(_) => state_of(&client, id, state, diags).await,
            Err(e) if e.status() == Some(404) => None,
            Err(e) => {
                diags.api_error("Reading the database", &e, &[]);
                None
            }
        }
    }

    async fn update(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        config: &Value,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let limit = timeout(config, "update", diags);
        let id = prior.get("id").as_str()?.parse().ok()?;
        // An earlier apply that timed out: finish waiting on its operation first.
        if let Some(op) = private.get(OP_KEY).and_then(|s| s.parse().ok()) {
            if let Ok(op) = client.get_operation(op).await {
                if !wait_op(&client, &op, limit, "Finishing the previous change", diags).await {
                    return None;
                }
            }
            private.remove(OP_KEY);
        }
        let changed = |k: &str| planned.get(k) != prior.get(k) && !planned.get(k).is_unknown();
        if changed("mode") || changed("extensions") || changed("connection_limit") {
            let req = UpdateDatabase {
                version: None,
                mode: planned.get("mode").as_str().map(|m| {
                    if m == "protected" {
                        DatabaseMode::Protected
                    } else {
                        DatabaseMode::Standard
                    }
                }),
                extensions: planned.get("extensions").as_strings(),
                connection_limit: planned.get("connection_limit").as_i64().map(|n| n as i32),
            };
            match client.update_database(id, &req).await {
                Ok(acc) => {
                    if let Some(op) = acc.operation {
                        private.set(OP_KEY, op.id.to_string());
                        if !wait_op(&client, &op, limit, "Updating the database", diags).await {
                            return None;
                        }
                        private.remove(OP_KEY);
                    }
                }
                Err(e) => {
                    diags.api_error("Updating the database", &e, &field_paths());
                    return None;
                }
            }
        }
        for a in Access::ALL {
            if rotates(prior, planned, a.as_str()) {
                match client.rotate_credential(id, a).await {
                    Ok(acc) => {
                        if let Some(op) = acc.operation {
                            if !wait_op(&client, &op, limit, &format!("Rotating the {} password", a.as_str()), diags)
                                .await
                            {
                                return None;
                            }
                        }
                    }
                    Err(e) => {
                        diags.api_error("Rotating a password", &e, &[]);
                        return None;
                    }
                }
            }
        }
        state_of(&client, id, config, diags).await
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _private: &mut Private, diags: &mut Diags) {
        let Some(client) = ctx.client(diags).await else { return };
        let limit = timeout(prior, "delete", diags);
        let Some(id) = prior.get("id").as_str().and_then(|s| s.parse().ok()) else { return };
        match client.delete_database(id, false).await {
            Ok(acc) if acc.database.status == DatabaseStatus::Retained => diags.warn(
                format!("Database {} retained, not dropped", acc.database.physical_name),
                "It is protected: its data, roles and credentials stay on the instance, no longer managed. \
                 Declaring it again re-adopts it; only a platform admin can drop it (DELETE ?force=true).",
            ),
            Ok(acc) => {
                if let Some(op) = acc.operation {
                    wait_op(&client, &op, limit, "Deleting the database", diags).await;
                }
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => diags.api_error("Deleting the database", &e, &[]),
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let found = if let Ok(uuid) = id.parse() {
            client.get_database(uuid).await
        } else if let Some((tenant, name)) = id.split_once('/') {
            client.find_database(tenant, name).await
        } else {
            diags.error("Invalid import id", format!("{id:?}: use the database id or `tenant/name`"));
            return None;
        };
        match found {
            Ok(db) => state_of(&client, db.id, &Value::Null, diags).await,
            Err(e) if e.status() == Some(404) => {
                diags.error(
                    "Cannot import a database that does not exist",
                    format!("no database {id:?} visible to this token"),
                );
                None
            }
            Err(e) => {
                diags.api_error("Importing the database", &e, &[]);
                None
            }
        }
    }
}

/// A trigger rotates when its value changes; adding a key only records it (so importing a
/// database or starting to use triggers never rotates by surprise).
fn rotates(prior: &Value, planned: &Value, key: &str) -> bool {
    let (before, after) = (prior.get("rotation_triggers").get(key), planned.get("rotation_triggers").get(key));
    !before.is_null() && !after.is_null() && before != after
}

async fn find_existing(client: &Client, req: &CreateDatabase, diags: &mut Diags) -> Option<ApiDatabase> {
    let tenant = match &req.tenant {
        Some(t) => t.clone(),
        None => match client.list_tenants().await {
            Ok(ts) if ts.len() == 1 => ts[0].name.clone(),
            _ => {
                diags.error_at(
                    Path::attr("tenant"),
                    "Database already exists",
                    "set `tenant` so the existing database can be found",
                );
                return None;
            }
        },
    };
    match client.find_database(&tenant, &req.name).await {
        Ok(db) => Some(db),
        Err(e) => {
            diags.api_error("Looking up the existing database", &e, &[]);
            None
        }
    }
}

/// The resource's state: the service's view plus what only the configuration holds.
async fn state_of(client: &Client, id: uuid::Uuid, config_or_prior: &Value, diags: &mut Diags) -> Option<Value> {
    let db = match client.get_database(id).await {
        Ok(db) => db,
        Err(e) => {
            diags.api_error("Reading the database", &e, &[]);
            return None;
        }
    };
    let creds = match client.list_credentials(id).await {
        Ok(c) => c,
        Err(e) => {
            diags.api_error("Reading credentials", &e, &[]);
            return None;
        }
    };
    let mut m: BTreeMap<String, Value> =
        database_values(&db, &creds).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    for k in ["placement", "rotation_triggers", "timeouts"] {
        m.insert(k.to_string(), config_or_prior.get(k).clone());
    }
    Some(Value::Map(m))
}
