//! `dbaas_database`: a database with its read/write/admin roles and credentials.

use dbaas_client::{
    Access, Client, CreateDatabase, Database as ApiDatabase, DatabaseMode, DatabaseStatus, Environment, Placement,
    PoolMode, UpdateDatabase,
};

use super::common::{field_paths, wait_op};
use super::database_data::DatabaseDataModel;
use super::database_model::{DatabaseModel, PlacementModel, RestoreFromModel};
use crate::framework::{Ctx, Diags, Field, Op, Path, Private, Schema, TypedResource};

pub struct Database;

const OP_KEY: &str = "operation_id";

fn api_paths() -> Vec<(&'static str, Path)> {
    type D = DatabaseModel;
    let mut paths = field_paths(&[
        D::name,
        D::tenant,
        D::instance,
        D::placement,
        D::mode,
        D::extensions,
        D::connection_limit,
        D::pool_mode,
        D::backup_retention_days,
        D::backup_store,
    ]);
    paths.push(("restore_from", Path::attr(D::restore_from).then(RestoreFromModel::backup)));
    paths
}

fn pool_mode(m: &str) -> Option<PoolMode> {
    m.parse().ok()
}

fn mode(m: &str) -> DatabaseMode {
    if m == "protected" {
        DatabaseMode::Protected
    } else {
        DatabaseMode::Standard
    }
}

#[tonic::async_trait]
impl TypedResource for Database {
    type Model = DatabaseModel;

    fn type_name(&self) -> &'static str {
        "dbaas_database"
    }

    fn schema(&self) -> Schema {
        Schema::new("A PostgreSQL database with `read`, `write` and `admin` roles whose privileges cover every object created later.", DatabaseModel::attrs())
            .with_timeouts(&["create", "update", "delete"])
    }

    fn validate(&self, c: &DatabaseModel, diags: &mut Diags) {
        type D = DatabaseModel;
        let tenant = c.tenant.as_str();
        if let Some(t) = tenant {
            if let Err(m) = dbaas_client::names::validate_tenant_name(t) {
                diags.error_at(Path::attr(D::tenant), "Invalid tenant name", m);
            }
        }
        if let Some(n) = c.name.as_str() {
            if let Err(m) = dbaas_client::names::validate_database_name(tenant.unwrap_or(""), n) {
                diags.error_at(Path::attr(D::name), "Invalid database name", m);
            }
        }
        // Unknown values (module inputs at validate time) decide nothing yet.
        if c.instance.is_known() && c.placement.is_known() {
            diags.error_at(
                Path::attr(D::placement),
                "Conflicting instance and placement",
                "set either `instance` or `placement`, not both",
            );
        }
        if c.instance.is_null() && c.placement.is_null() {
            diags.error_at(
                Path::attr(D::instance),
                "Missing instance or placement",
                "set `instance` (an instance name) or `placement { environment = … }`",
            );
        }
        if let Some(e) = c.placement.known().and_then(|p| p.environment.as_str()) {
            if e.parse::<Environment>().is_err() {
                diags.error_at(
                    Path::attr(D::placement).then(PlacementModel::environment),
                    "Invalid environment",
                    format!("{e:?}: use sandbox, preprod or prod"),
                );
            }
        }
        if let Some(m) = c.mode.as_str() {
            if m != "standard" && m != "protected" {
                diags.error_at(Path::attr(D::mode), "Invalid mode", format!("{m:?}: use standard or protected"));
            }
        }
        if let Some(m) = c.pool_mode.as_str() {
            if pool_mode(m).is_none() {
                diags.error_at(
                    Path::attr(D::pool_mode),
                    "Invalid pool mode",
                    format!("{m:?}: use session or transaction"),
                );
            }
        }
        if let Some(list) = c.extensions.known() {
            for (i, e) in list.iter().enumerate() {
                if let Some(Err(m)) = e.as_str().map(dbaas_client::names::validate_extension_name) {
                    diags.error_at(Path::attr(D::extensions).index(i), "Invalid extension name", m);
                }
            }
        }
        if let Some(n) = c.connection_limit.get() {
            if !(-1..=10_000).contains(&n) {
                diags.error_at(
                    Path::attr(D::connection_limit),
                    "Invalid connection limit",
                    "use -1 (no limit) or 0-10000",
                );
            }
        }
        if let Some(m) = c.rotation_triggers.known() {
            for k in m.keys() {
                if k.parse::<Access>().is_err() {
                    diags.error_at(
                        Path::attr(D::rotation_triggers).key(k),
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
        prior: Option<&DatabaseModel>,
        planned: &mut DatabaseModel,
        config: &DatabaseModel,
        _private: &Private,
        diags: &mut Diags,
    ) {
        let Some(prior) = prior else {
            // Say at plan time that the instance does not exist. Only a warning: the same
            // configuration may create it (`instance = dbaas_instance.x.name` is known at plan
            // before the instance exists); if it does not, the create fails on `instance`
            // before anything is made.
            if let Some(name) = config.instance.as_str() {
                if let Some(client) = ctx.client(&mut Diags::default()).await {
                    if let Err(e) = client.get_instance(name).await {
                        if e.status() == Some(404) {
                            diags.warn_at(
                                Path::attr(DatabaseModel::instance),
                                "Unknown instance",
                                format!("no instance named {name:?} is registered yet; the apply fails unless this configuration creates it"),
                            );
                        }
                    }
                }
            }
            return;
        };
        // A changed trigger rotates that password: its value is known only after apply.
        for a in Access::ALL {
            if rotates(prior, planned, a) {
                let (password, uri) = planned.credential_mut(a);
                *password = Field::Unknown;
                *uri = Field::Unknown;
            }
        }
    }

    async fn create(
        &self,
        ctx: &Ctx,
        _planned: &DatabaseModel,
        config: &DatabaseModel,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<DatabaseModel> {
        let client = ctx.client(diags).await?;
        let limit = config.timeouts.limit(Op::Create, diags);
        let req = CreateDatabase {
            name: config.name.as_str()?.to_string(),
            tenant: config.tenant.as_str().map(str::to_string),
            instance: config.instance.as_str().map(str::to_string),
            placement: config.placement.known().map(|p| Placement {
                environment: p.environment.as_str().and_then(|e| e.parse().ok()),
                labels: p.labels.all_known().unwrap_or_default(),
            }),
            mode: config.mode.as_str().map(mode),
            extensions: config.extensions.all_known().unwrap_or_default(),
            connection_limit: config.connection_limit.get().map(|n| n as i32),
            restore_from: config.restore_from.known().and_then(|r| r.backup.as_str()).and_then(|b| b.parse().ok()),
            backup_retention_days: config.backup_retention_days.get().map(|d| d as u32),
            backup_store: config.backup_store.as_str().map(str::to_string),
            pool_mode: config.pool_mode.as_str().and_then(pool_mode),
        };
        let (id, op) = match client.create_database(&req).await {
            Ok(acc) => (acc.database.id, acc.operation),
            Err(e) if e.problem().is_some_and(|p| p.code == "already_exists") => {
                // Ours from an apply that timed out (still provisioning), or dropped by hand
                // (drift): resume or reconcile instead of failing or duplicating.
                // Decided on a live comparison: a stored one may predate a drop by hand.
                let existing = find_existing(&client.with_fresh_drift(true), &req, diags).await?;
                if matches!(existing.status, DatabaseStatus::Provisioning | DatabaseStatus::Updating) {
                    let op = client.get_operation(existing.last_operation_id?).await.ok();
                    (existing.id, op)
                } else if existing.drift.as_ref().is_some_and(|d| d.database_missing || !d.missing_roles.is_empty()) {
                    match client.reconcile_database(existing.id).await {
                        Ok(acc) => (existing.id, acc.operation),
                        Err(e) => {
                            diags.api_error("Recreating the database", &e, &api_paths());
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
                diags.api_error("Creating the database", &e, &api_paths());
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
        state_of(&client, id, config, diags).await
    }

    async fn read(
        &self,
        ctx: &Ctx,
        state: &DatabaseModel,
        _private: &mut Private,
        diags: &mut Diags,
    ) -> Option<DatabaseModel> {
        let client = ctx.client(diags).await?;
        let id = state.id.as_str()?.parse().ok()?;
        // Coalesced with the other resources' refreshes (one request for many databases),
        // or from the tenant's snapshot when this plan refreshes many of its databases.
        let read = match state.tenant.as_str() {
            Some(tenant) => client.refresh_database(tenant, id).await,
            None => client.read_database(id).await,
        };
        match read {
            Ok(None) => None,
            Ok(Some(db)) if db.drift.as_ref().is_some_and(|d| d.database_missing) => {
                diags.warn(
                    format!("Database {} was dropped outside Terraform", db.physical_name),
                    "It is gone from the instance; the next apply creates it again (empty).",
                );
                None
            }
            Ok(Some(db)) => {
                super::common::warn_if_stored_drift(&db, diags);
                Some(state_from(db, state))
            }
            Err(e) => {
                diags.api_error("Reading the database", &e, &[]);
                None
            }
        }
    }

    async fn update(
        &self,
        ctx: &Ctx,
        prior: &DatabaseModel,
        planned: &DatabaseModel,
        config: &DatabaseModel,
        private: &mut Private,
        diags: &mut Diags,
    ) -> Option<DatabaseModel> {
        let client = ctx.client(diags).await?;
        let limit = config.timeouts.limit(Op::Update, diags);
        let id = prior.id.as_str()?.parse().ok()?;
        // An earlier apply that timed out: finish waiting on its operation first.
        if let Some(op) = private.get(OP_KEY).and_then(|s| s.parse().ok()) {
            if let Ok(op) = client.get_operation(op).await {
                if !wait_op(&client, &op, limit, "Finishing the previous change", diags).await {
                    return None;
                }
            }
            private.remove(OP_KEY);
        }
        fn changed<T: PartialEq>(prior: &Field<T>, planned: &Field<T>) -> bool {
            planned != prior && !planned.is_unknown()
        }
        if changed(&prior.mode, &planned.mode)
            || changed(&prior.extensions, &planned.extensions)
            || changed(&prior.connection_limit, &planned.connection_limit)
            || changed(&prior.pool_mode, &planned.pool_mode)
            || changed(&prior.backup_retention_days, &planned.backup_retention_days)
            || changed(&prior.backup_store, &planned.backup_store)
        {
            let req = UpdateDatabase {
                version: None,
                mode: planned.mode.as_str().map(mode),
                extensions: planned.extensions.all_known(),
                connection_limit: planned.connection_limit.get().map(|n| n as i32),
                backup_retention_days: planned.backup_retention_days.get().map(|d| d as u32),
                backup_store: planned.backup_store.as_str().map(str::to_string),
                pool_mode: planned.pool_mode.as_str().and_then(pool_mode),
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
                    diags.api_error("Updating the database", &e, &api_paths());
                    return None;
                }
            }
        }
        for a in Access::ALL {
            if rotates(prior, planned, a) {
                match client.rotate_credential(id, a).await {
                    Ok(acc) => {
                        let what = format!("Rotating the {} password", a.as_str());
                        if !wait_op(&client, &acc.operation, limit, &what, diags).await {
                            return None;
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

    async fn delete(&self, ctx: &Ctx, prior: &DatabaseModel, _private: &mut Private, diags: &mut Diags) {
        let Some(client) = ctx.client(diags).await else { return };
        let limit = prior.timeouts.limit(Op::Delete, diags);
        let Some(id) = prior.id.as_str().and_then(|s| s.parse().ok()) else { return };
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

    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<DatabaseModel> {
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
            Ok(db) => state_of(&client, db.id, &DatabaseModel::default(), diags).await,
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
fn rotates(prior: &DatabaseModel, planned: &DatabaseModel, a: Access) -> bool {
    let (before, after) = (prior.rotation_triggers.entry(a.as_str()), planned.rotation_triggers.entry(a.as_str()));
    !before.is_null() && !after.is_null() && before != after
}

async fn find_existing(client: &Client, req: &CreateDatabase, diags: &mut Diags) -> Option<ApiDatabase> {
    let tenant = match &req.tenant {
        Some(t) => t.clone(),
        None => match client.list_tenants().await {
            Ok(ts) if ts.len() == 1 => ts[0].name.clone(),
            _ => {
                diags.error_at(
                    Path::attr(DatabaseModel::tenant),
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
async fn state_of(
    client: &Client,
    id: uuid::Uuid,
    config_or_prior: &DatabaseModel,
    diags: &mut Diags,
) -> Option<DatabaseModel> {
    match client.read_database(id).await {
        Ok(Some(db)) => Some(state_from(db, config_or_prior)),
        Ok(None) => {
            diags.error("Reading the database", format!("database {id} is gone (deleted meanwhile?)"));
            None
        }
        Err(e) => {
            diags.api_error("Reading the database", &e, &[]);
            None
        }
    }
}

/// [`state_of`] for a database read whole (its credentials included).
fn state_from(db: ApiDatabase, config_or_prior: &DatabaseModel) -> DatabaseModel {
    let creds = db.credentials.as_deref().unwrap_or_default();
    DatabaseModel::from_api(DatabaseDataModel::from_api(&db, creds), config_or_prior)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_schema() {
        crate::framework::model::assert_matches_schema::<DatabaseModel>(&TypedResource::schema(&Database));
    }

    /// Through the untyped `Resource` the server calls: a changed trigger makes that level's
    /// password and URI unknown, everything else in the plan stays as Terraform proposed it.
    #[tokio::test]
    async fn changed_trigger_plans_a_new_password_only_for_its_level() {
        use crate::cty::Value;
        use crate::framework::model::Model;
        use crate::framework::resource::Resource;

        let with = |triggers: Value| {
            let mut m = DatabaseModel {
                id: Field::str("5f0e0d3c-0000-4000-8000-000000000000"),
                name: Field::str("orders"),
                instance: Field::str("main"),
                extensions: Field::Known(vec![Field::str("citext"), Field::Unknown]),
                read_password: Field::str("r"),
                read_uri: Field::str("r-uri"),
                write_password: Field::str("w"),
                write_uri: Field::str("w-uri"),
                ..Default::default()
            }
            .to_value();
            m.set(DatabaseModel::rotation_triggers, triggers);
            m
        };
        let triggers = |read: &str| {
            Value::Map(
                [("read".to_string(), Value::String(read.into())), ("write".to_string(), Value::String("1".into()))]
                    .into(),
            )
        };
        let prior = with(triggers("1"));
        let (ctx, private) = (Ctx::default(), Private::default());
        let mut diags = Diags::default();

        let mut planned = prior.clone();
        Resource::modify_plan(&Database, &ctx, &prior, &mut planned, &prior, &private, &mut diags).await;
        assert_eq!(planned, prior, "no change, no rotation");

        let proposed = with(triggers("2"));
        let mut planned = proposed.clone();
        Resource::modify_plan(&Database, &ctx, &prior, &mut planned, &proposed, &private, &mut diags).await;
        let mut expected = proposed;
        expected.set(DatabaseModel::read_password, Value::Unknown);
        expected.set(DatabaseModel::read_uri, Value::Unknown);
        assert_eq!(planned, expected);
        assert!(!diags.has_errors());
    }
}
