//! Data source `dbaas_instance`: an instance by name.

use dbaas_client::{Instance, InstanceKind};

use crate::framework::{model, Ctx, Diags, Field, List, Map, Schema, TypedDataSource};

pub struct InstanceData;

model! {
    /// Data source `dbaas_instance`: what the service tells of an instance (never secrets).
    pub struct InstanceDataModel {
        name: Field<String> => required("Instance name."),
        id: Field<String> => computed("Instance id."),
        kind: Field<String> => computed("`external` or `managed`."),
        status: Field<String> => computed("provisioning, ready, stopped, failed, deleting."),
        host: Field<String> => computed("Host."),
        port: Field<i64> => computed("Port."),
        public_host: Field<String> => computed("Host for clients."),
        admin_user: Field<String> => computed("Admin login."),
        sslmode: Field<String> => computed("TLS mode used by the service."),
        ca_cert: Field<String> => computed("PEM CA certificate of the server (for verify-full), when known."),
        environment: Field<String> => computed("Environment."),
        labels: Field<Map<String>> => computed("Labels."),
        max_databases: Field<i64> => computed("Capacity."),
        allowed_extensions: Field<List<String>> => computed("Allowed extensions."),
        server_version: Field<String> => computed("PostgreSQL version."),
        database_count: Field<i64> => computed("Databases on it."),
    }
}

impl InstanceDataModel {
    /// An instance from the API's record (the `dbaas_instance` resource builds its state from
    /// this too).
    pub fn from_api(i: &Instance) -> Self {
        Self {
            name: Field::str(&i.name),
            id: Field::str(i.id.to_string()),
            kind: Field::str(if i.kind == InstanceKind::Managed { "managed" } else { "external" }),
            status: Field::str(i.status.as_str()),
            host: Field::str(&i.host),
            port: Field::Known(i64::from(i.port)),
            public_host: Field::str(&i.public_host),
            admin_user: Field::str(&i.admin_user),
            sslmode: Field::str(i.sslmode.as_str()),
            ca_cert: i.ca_cert.clone().into(),
            environment: Field::str(i.environment.as_str()),
            labels: Field::map(i.labels.clone()),
            max_databases: Field::Known(i64::from(i.max_databases)),
            allowed_extensions: Field::list(i.allowed_extensions.clone()),
            server_version: Field::str(&i.server_version),
            database_count: Field::Known(i.database_count),
        }
    }
}

#[tonic::async_trait]
impl TypedDataSource for InstanceData {
    type Model = InstanceDataModel;

    fn type_name(&self) -> &'static str {
        "dbaas_instance"
    }

    fn schema(&self) -> Schema {
        Schema::new("Reads a registered instance (secrets are never returned).", InstanceDataModel::attrs())
    }

    async fn read(&self, ctx: &Ctx, c: &InstanceDataModel, diags: &mut Diags) -> Option<InstanceDataModel> {
        let client = ctx.client(diags).await?;
        match client.get_instance(c.name.as_str()?).await {
            Ok(i) => Some(InstanceDataModel::from_api(&i)),
            Err(e) => {
                diags.api_error("Looking up the instance", &e, &[]);
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
        crate::framework::model::assert_matches_schema::<InstanceDataModel>(&TypedDataSource::schema(&InstanceData));
    }
}
