//! `dbaas_tenant`: a team's namespace (platform admin).

use dbaas_client::{CreateTenant, UpdateTenant};

use super::common::field_paths;
use crate::framework::{model, Ctx, Diags, Field, Path, Private, Schema, TypedResource};

pub struct Tenant;

model! {
    /// `dbaas_tenant` as Terraform holds it.
    pub struct TenantModel {
        id: Field<String> => computed("Tenant id.").keep(),
        name: Field<String> => required("`^[a-z][a-z0-9-]{0,19}$`; prefixes every physical name.").replace(),
        max_databases: Field<i64> => optional_computed("Quota of live databases (default 50)."),
    }
}

fn state(t: &dbaas_client::Tenant) -> TenantModel {
    TenantModel {
        id: Field::str(t.id.to_string()),
        name: Field::str(&t.name),
        max_databases: Field::Known(i64::from(t.max_databases)),
    }
}

#[tonic::async_trait]
impl TypedResource for Tenant {
    type Model = TenantModel;

    fn type_name(&self) -> &'static str {
        "dbaas_tenant"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            "A tenant (team) whose tokens see only its own databases. Needs a platform-admin token.",
            TenantModel::attrs(),
        )
    }

    fn validate(&self, c: &TenantModel, diags: &mut Diags) {
        if let Some(Err(m)) = c.name.as_str().map(dbaas_client::names::validate_tenant_name) {
            diags.error_at(Path::attr(TenantModel::name), "Invalid tenant name", m);
        }
        if c.max_databases.get().is_some_and(|n| !(0..=100_000).contains(&n)) {
            diags.error_at(Path::attr(TenantModel::max_databases), "Invalid quota", "use 0-100000");
        }
    }

    async fn create(
        &self,
        ctx: &Ctx,
        _p: &TenantModel,
        c: &TenantModel,
        _pr: &mut Private,
        diags: &mut Diags,
    ) -> Option<TenantModel> {
        let client = ctx.client(diags).await?;
        let req =
            CreateTenant { name: c.name.as_str()?.to_string(), max_databases: c.max_databases.get().map(|n| n as i32) };
        match client.create_tenant(&req).await {
            Ok(t) => Some(state(&t)),
            Err(e) if e.status() == Some(409) => {
                diags.error_at(
                    Path::attr(TenantModel::name),
                    "Tenant already exists",
                    format!(
                        "tenant {0} exists and is managed elsewhere (or was made with the API); to manage it here, \
                         import it with `terraform import <address> {0}` or an `import` block with id = \"{0}\"",
                        req.name
                    ),
                );
                None
            }
            Err(e) => {
                diags.api_error(
                    "Creating the tenant",
                    &e,
                    &field_paths(&[TenantModel::name, TenantModel::max_databases]),
                );
                None
            }
        }
    }

    async fn read(&self, ctx: &Ctx, s: &TenantModel, _pr: &mut Private, diags: &mut Diags) -> Option<TenantModel> {
        let client = ctx.client(diags).await?;
        match client.get_tenant(s.name.as_str()?).await {
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
        _prior: &TenantModel,
        planned: &TenantModel,
        _c: &TenantModel,
        _pr: &mut Private,
        diags: &mut Diags,
    ) -> Option<TenantModel> {
        let client = ctx.client(diags).await?;
        let name = planned.name.as_str()?;
        let req = UpdateTenant { max_databases: planned.max_databases.get().map(|n| n as i32), version: None };
        match client
            .send::<_, dbaas_client::Tenant>(reqwest_patch(), &format!("/v1/tenants/{name}"), Some(&req), &[], None)
            .await
        {
            Ok(r) => Some(state(&r.body)),
            Err(e) => {
                diags.api_error("Updating the tenant", &e, &field_paths(&[TenantModel::max_databases]));
                None
            }
        }
    }

    async fn delete(&self, ctx: &Ctx, prior: &TenantModel, _pr: &mut Private, diags: &mut Diags) {
        let Some(client) = ctx.client(diags).await else { return };
        let Some(name) = prior.name.as_str() else { return };
        match client.delete_tenant(name).await {
            Ok(()) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => diags.api_error("Deleting the tenant", &e, &[]),
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<TenantModel> {
        let probe = TenantModel { name: Field::str(id), ..Default::default() };
        self.read(ctx, &probe, &mut Private::default(), diags).await
    }
}

pub fn reqwest_patch() -> reqwest::Method {
    reqwest::Method::PATCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_schema() {
        crate::framework::model::assert_matches_schema::<TenantModel>(&TypedResource::schema(&Tenant));
    }
}
