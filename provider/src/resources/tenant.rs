//! `dbaas_tenant`: a team's namespace (platform admin).

use dbaas_client::{CreateTenant, UpdateTenant};

use crate::cty::{Type, Value};
use crate::framework::{Attr, Ctx, Diags, Path, Private, Resource, Schema};

pub struct Tenant;

fn state(t: &dbaas_client::Tenant) -> Value {
    Value::object([
        ("id", Value::str(t.id.to_string())),
        ("name", Value::str(&t.name)),
        ("max_databases", Value::int(i64::from(t.max_databases))),
    ])
}

#[tonic::async_trait]
impl Resource for Tenant {
    fn type_name(&self) -> &'static str {
        "dbaas_tenant"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            "A tenant (team) whose tokens see only its own databases. Needs a platform-admin token.",
            vec![
                Attr::computed("id", Type::String, "Tenant id.").keep(),
                Attr::required("name", Type::String, "`^[a-z][a-z0-9-]{0,19}$`; prefixes every physical name.")
                    .replace(),
                Attr::optional_computed("max_databases", Type::Number, "Quota of live databases (default 50)."),
            ],
        )
    }

    fn validate(&self, c: &Value, diags: &mut Diags) {
        if let Some(Err(m)) = c.get("name").as_str().map(dbaas_client::names::validate_tenant_name) {
            diags.error_at(Path::attr("name"), "Invalid tenant name", m);
        }
        if c.get("max_databases").as_i64().is_some_and(|n| !(0..=100_000).contains(&n)) {
            diags.error_at(Path::attr("max_databases"), "Invalid quota", "use 0-100000");
        }
    }

    async fn create(&self, ctx: &Ctx, _p: &Value, c: &Value, _pr: &mut Private, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let req = CreateTenant {
            name: c.get("name").as_str()?.to_string(),
            max_databases: c.get("max_databases").as_i64().map(|n| n as i32),
        };
        match client.create_tenant(&req).await {
            Ok(t) => Some(state(&t)),
            Err(e) => {
                diags.api_error(
                    "Creating the tenant",
                    &e,
                    &[("name", Path::attr("name")), ("max_databases", Path::attr("max_databases"))],
                );
                None
            }
        }
    }

    async fn read(&self, ctx: &Ctx, s: &Value, _pr: &mut Private, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        match client.get_tenant(s.get("name").as_str()?).await {
            Ok(t) => Some(state(&t)),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => {
                diags.api_error("Reading the tenant", &e, &[]);
                None
            }
        }
    }

    async fn update(
        &self,
        ctx: &Ctx,
        _prior: &Value,
        planned: &Value,
        _c: &Value,
        _pr: &mut Private,
        diags: &mut Diags,
    ) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let name = planned.get("name").as_str()?;
        let req =
            UpdateTenant { max_databases: planned.get("max_databases").as_i64().map(|n| n as i32), version: None };
        match client
            .send::<_, dbaas_client::Tenant>(reqwest_patch(), &format!("/v1/tenants/{name}"), Some(&req), &[], None)
            .await
        {
            Ok(r) => Some(state(&r.body)),
            Err(e) => {
                diags.api_error("Updating the tenant", &e, &[("max_databases", Path::attr("max_databases"))]);
                None
            }
        }
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _pr: &mut Private, diags: &mut Diags) {
        let Some(client) = ctx.client(diags).await else { return };
        let Some(name) = prior.get("name").as_str() else { return };
        match client.delete_tenant(name).await {
            Ok(()) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => diags.api_error("Deleting the tenant", &e, &[]),
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<Value> {
        self.read(ctx, &Value::object([("name", Value::str(id))]), &mut Private::default(), diags).await
    }
}

pub fn reqwest_patch() -> reqwest::Method {
    reqwest::Method::PATCH
}
