//! `dbaas_instance`: registers an existing PostgreSQL server (platform admin).

use std::collections::BTreeMap;

use dbaas_client::{CreateInstance, Environment, InstanceKind, SslMode, UpdateInstance};

use crate::cty::{Type, Value};
use crate::framework::{Attr, Ctx, Diags, Path, Private, Resource, Schema};

pub struct Instance;

pub fn instance_values(i: &dbaas_client::Instance) -> Vec<(&'static str, Value)> {
    vec![
        ("id", Value::str(i.id.to_string())),
        ("name", Value::str(&i.name)),
        ("kind", Value::str(if i.kind == InstanceKind::Managed { "managed" } else { "external" })),
        ("host", Value::str(&i.host)),
        ("port", Value::int(i64::from(i.port))),
        ("public_host", Value::str(&i.public_host)),
        ("admin_user", Value::str(&i.admin_user)),
        ("sslmode", Value::str(i.sslmode.as_str())),
        ("environment", Value::str(i.environment.as_str())),
        ("labels", Value::string_map(&i.labels)),
        ("max_databases", Value::int(i64::from(i.max_databases))),
        ("allowed_extensions", Value::strings(i.allowed_extensions.clone())),
        ("server_version", Value::str(&i.server_version)),
        ("database_count", Value::int(i.database_count)),
    ]
}

fn sslmode(s: &str) -> Option<SslMode> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

#[tonic::async_trait]
impl Resource for Instance {
    fn type_name(&self) -> &'static str {
        "dbaas_instance"
    }

    fn schema(&self) -> Schema {
        let s = Type::String;
        Schema::new(
            "A PostgreSQL server databases are placed on. `external`: an existing server registered with an admin login that has SUPERUSER, or CREATEDB and CREATEROLE.",
            vec![
                Attr::computed("id", s.clone(), "Instance id.").keep(),
                Attr::required("name", s.clone(), "Instance name.").replace(),
                Attr::optional_computed("kind", s.clone(), "`external` (default). `managed` instances come with host provisioning.").replace(),
                Attr::required("host", s.clone(), "Host the service connects to.").replace(),
                Attr::optional_computed("port", Type::Number, "Port (default 5432).").replace(),
                Attr::optional_computed("public_host", s.clone(), "Host handed to clients in connection URIs (default: host).").replace(),
                Attr::required("admin_user", s.clone(), "Admin login of the service.").replace(),
                Attr::required("admin_password", s.clone(), "Password of the admin login (stored encrypted by the service).").sensitive(),
                Attr::optional_computed("sslmode", s.clone(), "TLS mode to reach the server: disable, prefer (default), require, verify-ca, verify-full.").replace(),
                Attr::optional("ca_cert", s.clone(), "PEM CA certificate of the server.").replace(),
                Attr::required("environment", s.clone(), "`sandbox`, `preprod` or `prod`.").replace(),
                Attr::optional_computed("labels", Type::map(s.clone()), "Labels for placement."),
                Attr::optional_computed("max_databases", Type::Number, "Capacity (default 100)."),
                Attr::optional_computed("allowed_extensions", Type::list(s.clone()), "Extensions tenants may request."),
                Attr::computed("server_version", s.clone(), "PostgreSQL version found at registration.").keep(),
                Attr::computed("database_count", Type::Number, "Databases on the instance."),
            ],
        )
    }

    fn validate(&self, c: &Value, diags: &mut Diags) {
        if let Some(e) = c.get("environment").as_str() {
            if e.parse::<Environment>().is_err() {
                diags.error_at(
                    Path::attr("environment"),
                    "Invalid environment",
                    format!("{e:?}: use sandbox, preprod or prod"),
                );
            }
        }
        if let Some(m) = c.get("sslmode").as_str() {
            if sslmode(m).is_none() {
                diags.error_at(
                    Path::attr("sslmode"),
                    "Invalid sslmode",
                    format!("{m:?}: use disable, prefer, require, verify-ca or verify-full"),
                );
            }
        }
        if let Some(k) = c.get("kind").as_str() {
            if k != "external" {
                diags.error_at(
                    Path::attr("kind"),
                    "Unsupported instance kind",
                    "only `external` instances can be registered for now",
                );
            }
        }
    }

    async fn create(&self, ctx: &Ctx, _p: &Value, c: &Value, _pr: &mut Private, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let req = CreateInstance {
            name: c.get("name").as_str()?.to_string(),
            kind: InstanceKind::External,
            host: c.get("host").as_str()?.to_string(),
            port: c.get("port").as_i64().map(|p| p as u16).unwrap_or(5432),
            public_host: c.get("public_host").as_str().map(str::to_string),
            admin_user: c.get("admin_user").as_str()?.to_string(),
            admin_password: c.get("admin_password").as_str()?.to_string(),
            sslmode: c.get("sslmode").as_str().and_then(sslmode).unwrap_or_default(),
            ca_cert: c.get("ca_cert").as_str().map(str::to_string),
            environment: c.get("environment").as_str()?.parse().ok()?,
            labels: c.get("labels").as_string_map().unwrap_or_default(),
            max_databases: c.get("max_databases").as_i64().map(|n| n as i32).unwrap_or(100),
            allowed_extensions: c.get("allowed_extensions").as_strings().unwrap_or_default(),
        };
        let paths: Vec<(&str, Path)> = [
            "name",
            "host",
            "port",
            "admin_user",
            "admin_password",
            "ca_cert",
            "kind",
            "allowed_extensions",
            "max_databases",
        ]
        .iter()
        .map(|f| (*f, Path::attr(f)))
        .collect();
        match client.create_instance(&req).await {
            Ok(i) => Some(with_config(&i, c)),
            Err(e) => {
                diags.api_error("Registering the instance", &e, &paths);
                None
            }
        }
    }

    async fn read(&self, ctx: &Ctx, s: &Value, _pr: &mut Private, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        match client.get_instance(s.get("name").as_str()?).await {
            Ok(i) => Some(with_config(&i, s)),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => {
                diags.api_error("Reading the instance", &e, &[]);
                None
            }
        }
    }

    async fn update(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        c: &Value,
        _pr: &mut Private,
        diags: &mut Diags,
    ) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let name = planned.get("name").as_str()?;
        let changed = |k: &str| planned.get(k) != prior.get(k);
        let req = UpdateInstance {
            version: None,
            admin_password: changed("admin_password")
                .then(|| planned.get("admin_password").as_str().map(str::to_string))
                .flatten(),
            labels: changed("labels").then(|| planned.get("labels").as_string_map()).flatten(),
            max_databases: changed("max_databases")
                .then(|| planned.get("max_databases").as_i64().map(|n| n as i32))
                .flatten(),
            allowed_extensions: changed("allowed_extensions")
                .then(|| planned.get("allowed_extensions").as_strings())
                .flatten(),
        };
        match client
            .send::<_, dbaas_client::Instance>(
                reqwest::Method::PATCH,
                &format!("/v1/instances/{name}"),
                Some(&req),
                &[],
                None,
            )
            .await
        {
            Ok(r) => Some(with_config(&r.body, c)),
            Err(e) => {
                diags.api_error(
                    "Updating the instance",
                    &e,
                    &[
                        ("admin_password", Path::attr("admin_password")),
                        ("allowed_extensions", Path::attr("allowed_extensions")),
                    ],
                );
                None
            }
        }
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _pr: &mut Private, diags: &mut Diags) {
        let Some(client) = ctx.client(diags).await else { return };
        let Some(name) = prior.get("name").as_str() else { return };
        match client
            .send::<(), serde_json::Value>(reqwest::Method::DELETE, &format!("/v1/instances/{name}"), None, &[], None)
            .await
        {
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => diags.api_error("Deleting the instance", &e, &[]),
        }
    }

    /// Import by name. The admin password is never returned by the API, so it is empty in the
    /// imported state; the next apply sends the configured one, which the API verifies.
    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<Value> {
        let found = self.read(ctx, &Value::object([("name", Value::str(id))]), &mut Private::default(), diags).await;
        if found.is_none() && !diags.has_errors() {
            diags.error("Cannot import an instance that does not exist", format!("no instance named {id:?}"));
        }
        found
    }
}

/// The API's view plus what only configuration holds (the password, the CA certificate).
fn with_config(i: &dbaas_client::Instance, c: &Value) -> Value {
    let mut m: BTreeMap<String, Value> = instance_values(i).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    m.insert("admin_password".into(), c.get("admin_password").clone());
    m.insert("ca_cert".into(), c.get("ca_cert").clone());
    Value::Map(m)
}
