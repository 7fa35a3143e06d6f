//! Data source `dbaas_databases`: databases of a tenant and/or environment.

use super::common::field_paths;
use crate::framework::{model, Ctx, Diags, Field, List, Path, Schema, TypedDataSource};

pub struct DatabasesData;

model! {
    /// Data source `dbaas_databases`: the filters and what they match.
    pub struct DatabasesDataModel {
        tenant: Field<String> => optional("Only this tenant's (admin tokens)."),
        environment: Field<String> => optional("Only this environment."),
        databases: Field<List<DatabaseItem>> => computed("The databases, sorted by tenant and name."),
    }
}

model! {
    /// One element of `databases` (an object type, not a nested attribute: no descriptions).
    pub struct DatabaseItem {
        id: Field<String>,
        tenant: Field<String>,
        name: Field<String>,
        instance: Field<String>,
        environment: Field<String>,
        status: Field<String>,
        mode: Field<String>,
    }
}

#[tonic::async_trait]
impl TypedDataSource for DatabasesData {
    type Model = DatabasesDataModel;

    fn type_name(&self) -> &'static str {
        "dbaas_databases"
    }

    fn schema(&self) -> Schema {
        Schema::new("Lists databases visible to the token.", DatabasesDataModel::attrs())
    }

    fn validate(&self, c: &DatabasesDataModel, diags: &mut Diags) {
        if let Some(e) = c.environment.as_str() {
            if e.parse::<dbaas_client::Environment>().is_err() {
                diags.error_at(
                    Path::attr(DatabasesDataModel::environment),
                    "Invalid environment",
                    format!("{e:?}: use sandbox, preprod or prod"),
                );
            }
        }
    }

    async fn read(&self, ctx: &Ctx, c: &DatabasesDataModel, diags: &mut Diags) -> Option<DatabasesDataModel> {
        let client = ctx.client(diags).await?;
        let mut q = Vec::new();
        if let Some(t) = c.tenant.as_str() {
            q.push(format!("tenant={t}"));
        }
        if let Some(e) = c.environment.as_str() {
            q.push(format!("environment={e}"));
        }
        match client.list_databases(&q.join("&")).await {
            Ok(list) => {
                let items = list.iter().map(|d| DatabaseItem {
                    id: Field::str(d.id.to_string()),
                    tenant: Field::str(&d.tenant),
                    name: Field::str(&d.name),
                    instance: Field::str(&d.instance),
                    environment: Field::str(d.environment.as_str()),
                    status: Field::str(d.status.as_str()),
                    mode: Field::str(d.mode.as_str()),
                });
                Some(DatabasesDataModel { databases: Field::list(items), ..c.clone() })
            }
            Err(e) => {
                diags.api_error("Listing databases", &e, &field_paths(&[DatabasesDataModel::tenant]));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_schema() {
        crate::framework::model::assert_matches_schema::<DatabasesDataModel>(&TypedDataSource::schema(&DatabasesData));
    }
}
