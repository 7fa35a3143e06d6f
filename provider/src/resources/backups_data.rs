//! Data source `dbaas_backups`: the backups of one database (also of one deleted since:
//! backups outlive their database), newest first: what `restore_from` takes.

use crate::framework::{model, Ctx, Diags, Field, List, Path, Schema, TypedDataSource};

pub struct BackupsData;

model! {
    /// Data source `dbaas_backups`: the database and its backups.
    pub struct BackupsDataModel {
        database_id: Field<String> => required("Id of the database (`dbaas_database.<name>.id`)."),
        latest_succeeded_id: Field<String> => computed("Id of the newest succeeded backup (null when there is none)."),
        backups: Field<List<BackupItem>> => computed("The backups, newest first."),
    }
}

model! {
    /// One element of `backups` (an object type: no descriptions).
    pub struct BackupItem {
        id: Field<String>,
        status: Field<String>,
        reason: Field<String>,
        store: Field<String>,
        created_at: Field<String>,
        size_bytes: Field<i64>,
        verify_status: Field<String>,
        locked: Field<bool>,
    }
}

#[tonic::async_trait]
impl TypedDataSource for BackupsData {
    type Model = BackupsDataModel;

    fn type_name(&self) -> &'static str {
        "dbaas_backups"
    }

    fn schema(&self) -> Schema {
        Schema::new("Lists the backups of a database, newest first.", BackupsDataModel::attrs())
    }

    fn validate(&self, c: &BackupsDataModel, diags: &mut Diags) {
        if let Some(id) = c.database_id.as_str() {
            if id.parse::<uuid::Uuid>().is_err() {
                diags.error_at(
                    Path::attr(BackupsDataModel::database_id),
                    "Invalid database id",
                    format!("{id:?} is not a UUID"),
                );
            }
        }
    }

    async fn read(&self, ctx: &Ctx, c: &BackupsDataModel, diags: &mut Diags) -> Option<BackupsDataModel> {
        let client = ctx.client(diags).await?;
        let id = c.database_id.as_str()?.parse().ok()?;
        match client.list_backups(id).await {
            Ok(list) => {
                let latest = list.iter().find(|b| b.status == dbaas_client::BackupStatus::Succeeded);
                let items = list.iter().map(|b| BackupItem {
                    id: Field::str(b.id.to_string()),
                    status: Field::str(format!("{:?}", b.status).to_lowercase()),
                    reason: Field::str(b.reason.as_str()),
                    store: Field::str(&b.store),
                    created_at: Field::str(b.created_at.to_rfc3339()),
                    size_bytes: b.size_bytes.into(),
                    verify_status: b.verify_status.map(|v| format!("{v:?}").to_lowercase()).into(),
                    locked: Field::Known(b.locked),
                });
                Some(BackupsDataModel {
                    latest_succeeded_id: latest.map(|b| b.id.to_string()).into(),
                    backups: Field::list(items),
                    ..c.clone()
                })
            }
            Err(e) => {
                diags.api_error("Listing backups", &e, &[("database_id", Path::attr(BackupsDataModel::database_id))]);
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
        crate::framework::model::assert_matches_schema::<BackupsDataModel>(&TypedDataSource::schema(&BackupsData));
    }
}
