//! Ephemeral resource `dbaas_credentials`: a database's static login for one access level,
//! read from the API when Terraform opens it and never written to state or plan (unlike the
//! `*_password`/`*_uri` attributes of `dbaas_database`).

use dbaas_client::Access;

use crate::framework::{model, Ctx, Diags, Field, Path, Private, Schema, TypedEphemeralResource};

pub struct Credentials;

model! {
    /// `dbaas_credentials` as Terraform holds it (only while it runs).
    pub struct CredentialsModel {
        database_id: Field<String> => required("Id of the database (e.g. `dbaas_database.x.id`)."),
        access: Field<String> => required("`read`, `write` or `admin`."),
        username: Field<String> => computed("Login name."),
        password: Field<String> => computed("Password.").sensitive(),
        uri: Field<String> => computed("Connection URI (`sslmode=require`).").sensitive(),
        ca_cert: Field<String> => computed("CA certificate (PEM) to verify the server with (`sslmode=verify-full`)."),
    }
}

#[tonic::async_trait]
impl TypedEphemeralResource for Credentials {
    type Model = CredentialsModel;

    fn type_name(&self) -> &'static str {
        "dbaas_credentials"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            "A database's static login (`read`, `write` or `admin`), read at use; never stored in state or plan.",
            CredentialsModel::attrs(),
        )
    }

    fn validate(&self, c: &CredentialsModel, diags: &mut Diags) {
        super::common::check_access(c.access.as_str(), Path::attr(CredentialsModel::access), diags);
    }

    async fn open(&self, ctx: &Ctx, c: &CredentialsModel, diags: &mut Diags) -> Option<(CredentialsModel, Private)> {
        let client = ctx.client(diags).await?;
        let Ok(db) = c.database_id.as_str()?.parse::<uuid::Uuid>() else {
            diags.error_at(Path::attr(CredentialsModel::database_id), "Invalid database id", "not a database id");
            return None;
        };
        let access: Access = c.access.as_str()?.parse().ok()?;
        let cred = match client.get_credential(db, access).await {
            Ok(cred) => cred,
            Err(e) => {
                diags.api_error("Reading the credentials", &e, &[]);
                return None;
            }
        };
        let state = CredentialsModel {
            username: Field::str(&cred.username),
            password: Field::str(&cred.password),
            uri: Field::str(&cred.uri),
            ca_cert: cred.ca_cert.into(),
            ..c.clone()
        };
        Some((state, Private::default()))
    }

    async fn close(&self, _ctx: &Ctx, _private: &Private, _diags: &mut Diags) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_schema() {
        crate::framework::model::assert_matches_schema::<CredentialsModel>(&TypedEphemeralResource::schema(
            &Credentials,
        ));
    }
}
