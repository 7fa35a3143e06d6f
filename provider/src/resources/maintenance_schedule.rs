//! `dbaas_maintenance_schedule`: recurring maintenance (repack, vacuum, analyze, reindex), backups
//! and restore drills on a database, starting only inside its instance's maintenance window.

use dbaas_client::{CreateSchedule, MaintenanceOptions, Schedule, ScheduleKind, UpdateSchedule};

use crate::framework::{model, Ctx, Diags, Field, List, Path, Private, Schema, TypedResource};

pub struct MaintenanceSchedule;

model! {
    /// `dbaas_maintenance_schedule` as Terraform holds it.
    pub struct ScheduleModel {
        id: Field<String> => computed("Schedule id.").keep(),
        database_id: Field<String> => required("Database to maintain.").replace(),
        kind: Field<String> => required("`repack`, `vacuum`, `analyze`, `reindex`, `backup` or `verify` (restore drill of the latest backup)."),
        cron: Field<String> => required("Cron expression, UTC: 5 fields (or 6 with seconds first), e.g. `0 3 * * SUN`."),
        tables: Field<List<String>> => optional("Schema-qualified tables; all tables when omitted."),
        bloat_threshold_percent: Field<f64> => optional("repack: skip tables with less estimated bloat (default 20)."),
        lock_timeout: Field<String> => optional("Longest wait for a table lock, e.g. `10s`."),
        jobs: Field<i64> => optional("repack: parallel index builds (1-8)."),
        max_transaction_age: Field<String> => optional("repack: skip a table locked by a transaction older than this (default `5m`)."),
        statement_timeout: Field<String> => optional("Longest one table's work may run, e.g. `2h` (default the service's, 6h; at most 24h)."),
        enabled: Field<bool> => optional_computed("Whether the schedule fires (default true)."),
        next_run_at: Field<String> => computed("Next slot (RFC 3339)."),
    }
}

fn kind(k: &str) -> Option<ScheduleKind> {
    serde_json::from_value(serde_json::Value::String(k.to_string())).ok()
}

fn options(c: &ScheduleModel) -> MaintenanceOptions {
    MaintenanceOptions {
        bloat_threshold_percent: c.bloat_threshold_percent.get(),
        lock_timeout: c.lock_timeout.as_str().map(str::to_string),
        jobs: c.jobs.get().map(|j| j as u32),
        max_transaction_age: c.max_transaction_age.as_str().map(str::to_string),
        kill_backends: None,
        statement_timeout: c.statement_timeout.as_str().map(str::to_string),
    }
}

fn state(s: &Schedule, c: &ScheduleModel) -> ScheduleModel {
    ScheduleModel {
        id: Field::str(s.id.to_string()),
        database_id: Field::str(s.database_id.to_string()),
        kind: Field::str(s.kind.as_str()),
        cron: Field::str(&s.cron),
        // Omitted tables stay null rather than becoming `[]` (which would be a diff).
        tables: if c.tables.is_null() && s.tables.is_empty() { Field::Null } else { Field::list(s.tables.clone()) },
        bloat_threshold_percent: s.options.bloat_threshold_percent.into(),
        lock_timeout: s.options.lock_timeout.clone().into(),
        jobs: s.options.jobs.map(i64::from).into(),
        max_transaction_age: s.options.max_transaction_age.clone().into(),
        statement_timeout: s.options.statement_timeout.clone().into(),
        enabled: Field::Known(s.enabled),
        next_run_at: Field::str(s.next_run_at.to_rfc3339()),
    }
}

fn ids(m: &ScheduleModel) -> Option<(uuid::Uuid, uuid::Uuid)> {
    Some((m.database_id.as_str()?.parse().ok()?, m.id.as_str()?.parse().ok()?))
}

/// The API's field names (options nested) and the attributes they map to.
fn field_paths() -> Vec<(&'static str, Path)> {
    type S = ScheduleModel;
    [
        ("cron", S::cron),
        ("tables", S::tables),
        ("kind", S::kind),
        ("options.bloat_threshold_percent", S::bloat_threshold_percent),
        ("options.jobs", S::jobs),
        ("options.lock_timeout", S::lock_timeout),
        ("options.max_transaction_age", S::max_transaction_age),
        ("options.statement_timeout", S::statement_timeout),
    ]
    .into_iter()
    .map(|(field, attr)| (field, Path::attr(attr)))
    .collect()
}

#[tonic::async_trait]
impl TypedResource for MaintenanceSchedule {
    type Model = ScheduleModel;

    fn type_name(&self) -> &'static str {
        "dbaas_maintenance_schedule"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            "Recurring maintenance on a database. Runs start on the cron slots (UTC), only inside the instance's maintenance window, once per slot however many API replicas run.",
            ScheduleModel::attrs(),
        )
    }

    fn validate(&self, c: &ScheduleModel, diags: &mut Diags) {
        if let Some(k) = c.kind.as_str() {
            if kind(k).is_none() {
                diags.error_at(
                    Path::attr(ScheduleModel::kind),
                    "Invalid kind",
                    format!("{k:?}: use repack, vacuum, analyze, reindex, backup or verify"),
                );
            }
        }
        if let Some(j) = c.jobs.get() {
            if !(1..=8).contains(&j) {
                diags.error_at(Path::attr(ScheduleModel::jobs), "Invalid jobs", "use 1-8");
            }
        }
    }

    async fn create(
        &self,
        ctx: &Ctx,
        _p: &ScheduleModel,
        c: &ScheduleModel,
        _pr: &mut Private,
        diags: &mut Diags,
    ) -> Option<ScheduleModel> {
        let client = ctx.client(diags).await?;
        let db: uuid::Uuid = match c.database_id.as_str()?.parse() {
            Ok(u) => u,
            Err(_) => {
                diags.error_at(Path::attr(ScheduleModel::database_id), "Invalid database id", "not a database id");
                return None;
            }
        };
        let req = CreateSchedule {
            kind: kind(c.kind.as_str()?)?,
            cron: c.cron.as_str()?.to_string(),
            tables: c.tables.all_known().unwrap_or_default(),
            options: options(c),
            enabled: c.enabled.get(),
        };
        match client.create_schedule(db, &req).await {
            Ok(s) => Some(state(&s, c)),
            Err(e) => {
                diags.api_error("Creating the schedule", &e, &field_paths());
                None
            }
        }
    }

    async fn read(&self, ctx: &Ctx, s: &ScheduleModel, _pr: &mut Private, diags: &mut Diags) -> Option<ScheduleModel> {
        let client = ctx.client(diags).await?;
        let (db, id) = ids(s)?;
        match client.get_schedule(db, id).await {
            Ok(sch) => Some(state(&sch, s)),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => {
                diags.api_error("Reading the schedule", &e, &[]);
                None
            }
        }
    }

    async fn update(
        &self,
        ctx: &Ctx,
        prior: &ScheduleModel,
        _planned: &ScheduleModel,
        c: &ScheduleModel,
        _pr: &mut Private,
        diags: &mut Diags,
    ) -> Option<ScheduleModel> {
        let client = ctx.client(diags).await?;
        let (db, id) = ids(prior)?;
        let req = UpdateSchedule {
            version: None,
            kind: c.kind.as_str().and_then(kind),
            cron: c.cron.as_str().map(str::to_string),
            tables: Some(c.tables.all_known().unwrap_or_default()),
            options: Some(options(c)),
            enabled: Some(c.enabled.get().unwrap_or(true)),
        };
        match client.update_schedule(db, id, &req).await {
            Ok(s) => Some(state(&s, c)),
            Err(e) => {
                diags.api_error("Updating the schedule", &e, &field_paths());
                None
            }
        }
    }

    async fn delete(&self, ctx: &Ctx, prior: &ScheduleModel, _pr: &mut Private, diags: &mut Diags) {
        let Some(client) = ctx.client(diags).await else { return };
        let Some((db, id)) = ids(prior) else { return };
        match client.delete_schedule(db, id).await {
            Ok(()) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => diags.api_error("Deleting the schedule", &e, &[]),
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<ScheduleModel> {
        let Some((db, sid)) = id.split_once('/') else {
            diags.error("Invalid import id", format!("{id:?}: use <database_id>/<schedule_id>"));
            return None;
        };
        let probe = ScheduleModel { database_id: Field::str(db), id: Field::str(sid), ..Default::default() };
        let found = self.read(ctx, &probe, &mut Private::default(), diags).await;
        if found.is_none() && !diags.has_errors() {
            diags.error("Cannot import a schedule that does not exist", format!("no schedule {id:?}"));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_schema() {
        crate::framework::model::assert_matches_schema::<ScheduleModel>(&TypedResource::schema(&MaintenanceSchedule));
    }
}
