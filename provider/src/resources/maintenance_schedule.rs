//! `dbaas_maintenance_schedule`: recurring maintenance (repack, vacuum, analyze, reindex) on
//! a database, starting only inside its instance's maintenance window.

use dbaas_client::{CreateSchedule, MaintenanceKind, MaintenanceOptions, Schedule, UpdateSchedule};

use crate::cty::{Type, Value};
use crate::framework::{Attr, Ctx, Diags, Path, Private, Resource, Schema};

pub struct MaintenanceSchedule;

fn kind(v: &Value) -> Option<MaintenanceKind> {
    serde_json::from_value(serde_json::Value::String(v.as_str()?.to_string())).ok()
}

fn options(c: &Value) -> MaintenanceOptions {
    MaintenanceOptions {
        bloat_threshold_percent: match c.get("bloat_threshold_percent") {
            Value::Number(n) => Some(*n),
            _ => None,
        },
        lock_timeout: c.get("lock_timeout").as_str().map(str::to_string),
        jobs: c.get("jobs").as_i64().map(|j| j as u32),
        max_transaction_age: c.get("max_transaction_age").as_str().map(str::to_string),
        kill_backends: None,
        statement_timeout: c.get("statement_timeout").as_str().map(str::to_string),
    }
}

fn state(s: &Schedule, c: &Value) -> Value {
    Value::object([
        ("id", Value::str(s.id.to_string())),
        ("database_id", Value::str(s.database_id.to_string())),
        ("kind", Value::str(s.kind.as_str())),
        ("cron", Value::str(&s.cron)),
        (
            "tables",
            if c.get("tables").is_null() && s.tables.is_empty() {
                Value::Null
            } else {
                Value::strings(s.tables.clone())
            },
        ),
        ("bloat_threshold_percent", s.options.bloat_threshold_percent.map(Value::Number).unwrap_or(Value::Null)),
        ("lock_timeout", Value::opt_str(s.options.lock_timeout.clone())),
        ("jobs", s.options.jobs.map(|j| Value::int(i64::from(j))).unwrap_or(Value::Null)),
        ("max_transaction_age", Value::opt_str(s.options.max_transaction_age.clone())),
        ("statement_timeout", Value::opt_str(s.options.statement_timeout.clone())),
        ("enabled", Value::Bool(s.enabled)),
        ("next_run_at", Value::str(s.next_run_at.to_rfc3339())),
    ])
}

fn ids(v: &Value) -> Option<(uuid::Uuid, uuid::Uuid)> {
    Some((v.get("database_id").as_str()?.parse().ok()?, v.get("id").as_str()?.parse().ok()?))
}

const PATHS: [&str; 8] = [
    "cron",
    "tables",
    "kind",
    "options.bloat_threshold_percent",
    "options.jobs",
    "options.lock_timeout",
    "options.max_transaction_age",
    "options.statement_timeout",
];

fn field_paths() -> Vec<(&'static str, Path)> {
    PATHS.iter().map(|f| (*f, Path::attr(f.trim_start_matches("options.")))).collect()
}

#[tonic::async_trait]
impl Resource for MaintenanceSchedule {
    fn type_name(&self) -> &'static str {
        "dbaas_maintenance_schedule"
    }

    fn schema(&self) -> Schema {
        let s = Type::String;
        Schema::new(
            "Recurring maintenance on a database. Runs start on the cron slots (UTC), only inside the instance's maintenance window, once per slot however many API replicas run.",
            vec![
                Attr::computed("id", s.clone(), "Schedule id.").keep(),
                Attr::required("database_id", s.clone(), "Database to maintain.").replace(),
                Attr::required("kind", s.clone(), "`repack`, `vacuum`, `analyze` or `reindex`."),
                Attr::required("cron", s.clone(), "Cron expression, UTC: 5 fields (or 6 with seconds first), e.g. `0 3 * * SUN`."),
                Attr::optional("tables", Type::list(s.clone()), "Schema-qualified tables; all tables when omitted."),
                Attr::optional("bloat_threshold_percent", Type::Number, "repack: skip tables with less estimated bloat (default 20)."),
                Attr::optional("lock_timeout", s.clone(), "Longest wait for a table lock, e.g. `10s`."),
                Attr::optional("jobs", Type::Number, "repack: parallel index builds (1-8)."),
                Attr::optional("max_transaction_age", s.clone(), "repack: skip a table locked by a transaction older than this (default `5m`)."),
                Attr::optional("statement_timeout", s.clone(), "Longest one table's work may run, e.g. `2h` (default the service's, 6h; at most 24h)."),
                Attr::optional_computed("enabled", Type::Bool, "Whether the schedule fires (default true)."),
                Attr::computed("next_run_at", s.clone(), "Next slot (RFC 3339)."),
            ],
        )
    }

    fn validate(&self, c: &Value, diags: &mut Diags) {
        if let Some(k) = c.get("kind").as_str() {
            if kind(c.get("kind")).is_none() {
                diags.error_at(
                    Path::attr("kind"),
                    "Invalid kind",
                    format!("{k:?}: use repack, vacuum, analyze or reindex"),
                );
            }
        }
        if let Some(j) = c.get("jobs").as_i64() {
            if !(1..=8).contains(&j) {
                diags.error_at(Path::attr("jobs"), "Invalid jobs", "use 1-8");
            }
        }
    }

    async fn create(&self, ctx: &Ctx, _p: &Value, c: &Value, _pr: &mut Private, diags: &mut Diags) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let db: uuid::Uuid = match c.get("database_id").as_str()?.parse() {
            Ok(u) => u,
            Err(_) => {
                diags.error_at(Path::attr("database_id"), "Invalid database id", "not a database id");
                return None;
            }
        };
        let req = CreateSchedule {
            kind: kind(c.get("kind"))?,
            cron: c.get("cron").as_str()?.to_string(),
            tables: c.get("tables").as_strings().unwrap_or_default(),
            options: options(c),
            enabled: c.get("enabled").as_bool(),
        };
        match client.create_schedule(db, &req).await {
            Ok(s) => Some(state(&s, c)),
            Err(e) => {
                diags.api_error("Creating the schedule", &e, &field_paths());
                None
            }
        }
    }

    async fn read(&self, ctx: &Ctx, s: &Value, _pr: &mut Private, diags: &mut Diags) -> Option<Value> {
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
        prior: &Value,
        _planned: &Value,
        c: &Value,
        _pr: &mut Private,
        diags: &mut Diags,
    ) -> Option<Value> {
        let client = ctx.client(diags).await?;
        let (db, id) = ids(prior)?;
        let req = UpdateSchedule {
            version: None,
            kind: kind(c.get("kind")),
            cron: c.get("cron").as_str().map(str::to_string),
            tables: Some(c.get("tables").as_strings().unwrap_or_default()),
            options: Some(options(c)),
            enabled: Some(c.get("enabled").as_bool().unwrap_or(true)),
        };
        match client.update_schedule(db, id, &req).await {
            Ok(s) => Some(state(&s, c)),
            Err(e) => {
                diags.api_error("Updating the schedule", &e, &field_paths());
                None
            }
        }
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _pr: &mut Private, diags: &mut Diags) {
        let Some(client) = ctx.client(diags).await else { return };
        let Some((db, id)) = ids(prior) else { return };
        match client.delete_schedule(db, id).await {
            Ok(()) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => diags.api_error("Deleting the schedule", &e, &[]),
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, diags: &mut Diags) -> Option<Value> {
        let Some((db, sid)) = id.split_once('/') else {
            diags.error("Invalid import id", format!("{id:?}: use <database_id>/<schedule_id>"));
            return None;
        };
        let probe = Value::object([("database_id", Value::str(db)), ("id", Value::str(sid))]);
        let found = self.read(ctx, &probe, &mut Private::default(), diags).await;
        if found.is_none() && !diags.has_errors() {
            diags.error("Cannot import a schedule that does not exist", format!("no schedule {id:?}"));
        }
        found
    }
}
