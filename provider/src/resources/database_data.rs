//! Data source `dbaas_database`: look a database up by id or tenant/name.

use dbaas_client::{Access, Credential, CredentialKind, Database};

use crate::framework::{model, Ctx, Diags, Field, List, Path, Schema, TypedDataSource};

pub struct DatabaseData;

const CREDENTIAL: &str = "Credential (sensitive).";

model! {
    /// Data source `dbaas_database`: what the service knows of a database, with its
    /// credentials.
    pub struct DatabaseDataModel {
        id: Field<String> => optional_computed("Database id (or give tenant and name)."),
        tenant: Field<String> => optional_computed("Tenant (defaults to the token's)."),
        name: Field<String> => optional_computed("Database name."),
        instance: Field<String> => computed("Instance holding it."),
        mode: Field<String> => computed("`standard` or `protected`."),
        physical_name: Field<String> => computed("Name on the instance."),
        environment: Field<String> => computed("Environment."),
        host: Field<String> => computed("Host clients connect to."),
        status: Field<String> => computed("Status in the service."),
        read_role: Field<String> => computed("Read role."),
        write_role: Field<String> => computed("Write role."),
        admin_role: Field<String> => computed("Admin role."),
        port: Field<i64> => computed("Port."),
        connection_limit: Field<i64> => computed("Connection limit."),
        pool_mode: Field<String> => computed("How the routing proxy pools its connections (`session` or `transaction`)."),
        extensions: Field<List<String>> => computed("Installed extensions."),
        read_password: Field<String> => computed(CREDENTIAL).sensitive(),
        write_password: Field<String> => computed(CREDENTIAL).sensitive(),
        admin_password: Field<String> => computed(CREDENTIAL).sensitive(),
        read_uri: Field<String> => computed(CREDENTIAL).sensitive(),
        write_uri: Field<String> => computed(CREDENTIAL).sensitive(),
        admin_uri: Field<String> => computed(CREDENTIAL).sensitive(),
    }
}

impl DatabaseDataModel {
    /// A database from the API's record and its credentials (the `dbaas_database` resource
    /// builds its state from this too).
    pub fn from_api(db: &Database, creds: &[Credential]) -> Self {
        let cred = |a: Access| creds.iter().find(|c| c.access == a && c.kind == CredentialKind::Static);
        let pw = |a: Access| Field::from(cred(a).map(|c| c.password.clone()));
        let uri = |a: Access| Field::from(cred(a).map(|c| c.uri.clone()));
        Self {
            id: Field::str(db.id.to_string()),
            tenant: Field::str(&db.tenant),
            name: Field::str(&db.name),
            instance: Field::str(&db.instance),
            mode: Field::str(db.mode.as_str()),
            physical_name: Field::str(&db.physical_name),
            environment: Field::str(db.environment.as_str()),
            host: Field::str(&db.host),
            status: Field::str(db.status.as_str()),
            read_role: Field::str(&db.roles.read),
            write_role: Field::str(&db.roles.write),
            admin_role: Field::str(&db.roles.admin),
            port: Field::Known(i64::from(db.port)),
            connection_limit: Field::Known(i64::from(db.connection_limit)),
            pool_mode: Field::str(db.pool_mode.as_str()),
            extensions: Field::list(db.extensions.clone()),
            read_password: pw(Access::Read),
            write_password: pw(Access::Write),
            admin_password: pw(Access::Admin),
            read_uri: uri(Access::Read),
            write_uri: uri(Access::Write),
            admin_uri: uri(Access::Admin),
        }
    }
}

#[tonic::async_trait]
impl TypedDataSource for DatabaseData {
    type Model = DatabaseDataModel;

    fn type_name(&self) -> &'static str {
        "dbaas_database"
    }

    fn schema(&self) -> Schema {
        Schema::new("Reads an existing database and its credentials.", DatabaseDataModel::attrs())
    }

    fn validate(&self, c: &DatabaseDataModel, diags: &mut Diags) {
        if c.id.is_null() && c.name.is_null() {
            diags.error_at(
                Path::attr(DatabaseDataModel::name),
                "Missing lookup key",
                "set `id`, or `name` (with `tenant` for admin tokens)",
            );
        }
    }

    async fn read(&self, ctx: &Ctx, c: &DatabaseDataModel, diags: &mut Diags) -> Option<DatabaseDataModel> {
        let client = ctx.client(diags).await?;
        let found = if let Some(id) = c.id.as_str() {
            match id.parse() {
                Ok(u) => client.get_database(u).await,
                Err(_) => {
                    diags.error_at(Path::attr(DatabaseDataModel::id), "Invalid id", "not a database id");
                    return None;
                }
            }
        } else {
            let name = c.name.as_str()?;
            let tenant = match c.tenant.as_str() {
                Some(t) => t.to_string(),
                None => match client.list_tenants().await {
                    Ok(ts) if ts.len() == 1 => ts[0].name.clone(),
                    _ => {
                        diags.error_at(
                            Path::attr(DatabaseDataModel::tenant),
                            "Missing tenant",
                            "admin tokens must set `tenant`",
                        );
                        return None;
                    }
                },
            };
            client.find_database(&tenant, name).await
        };
        let db = match found {
            Ok(db) => {
                super::common::warn_if_stored_drift(&db, diags);
                db
            }
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
        Some(DatabaseDataModel::from_api(&db, &creds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_schema() {
        crate::framework::model::assert_matches_schema::<DatabaseDataModel>(&TypedDataSource::schema(&DatabaseData));
    }
}
