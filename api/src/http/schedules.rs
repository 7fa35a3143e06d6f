//! Maintenance schedules of a database: cron expression, kind, options; next run shown.

use super::extract::ApiQuery;
use super::pagination::{in_memory, PageQuery};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use dbaas_client::{
    CreateMaintenance, CreateSchedule, List, MaintenanceOptions, Schedule, ScheduleKind, UpdateSchedule,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::databases::visible;
use super::extract::{if_match, ApiJson};
use super::tenants::stale;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::state::AppState;
use dbaas_engine::timing::{next_slot, parse_cron, shortest_gap};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_schedules, create_schedule)).routes(routes!(
        get_schedule,
        update_schedule,
        delete_schedule
    ))
}

/// Schedules one database may have (each can queue an operation per slot).
pub const MAX_SCHEDULES_PER_DATABASE: i64 = 10;

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    database_id: Uuid,
    #[sqlx(try_from = "String")]
    kind: ScheduleKind,
    cron: String,
    tables: Vec<String>,
    options: sqlx::types::Json<MaintenanceOptions>,
    enabled: bool,
    next_run_at: DateTime<Utc>,
    last_run_at: Option<DateTime<Utc>>,
    last_operation_id: Option<Uuid>,
    version: i64,
    origin: String,
    created_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT s.id, s.database_id, s.kind, s.cron, s.tables, s.options, s.enabled, s.next_run_at, \
    r.slot AS last_run_at, r.operation_id AS last_operation_id, s.version, s.origin, s.created_at FROM schedules s \
    LEFT JOIN LATERAL (SELECT slot, operation_id FROM schedule_runs WHERE schedule_id = s.id ORDER BY slot DESC LIMIT 1) r ON true";

impl From<Row> for Schedule {
    fn from(r: Row) -> Self {
        Schedule {
            id: r.id,
            database_id: r.database_id,
            kind: r.kind,
            cron: r.cron,
            tables: r.tables,
            options: r.options.0,
            enabled: r.enabled,
            next_run_at: r.next_run_at,
            last_run_at: r.last_run_at,
            last_operation_id: r.last_operation_id,
            version: r.version,
            origin: r.origin,
            created_at: r.created_at,
        }
    }
}

async fn load(s: &AppState, db: Uuid, id: Uuid) -> ApiResult<Row> {
    sqlx::query_as(&format!("{SELECT} WHERE s.id = $1 AND s.database_id = $2"))
        .bind(id)
        .bind(db)
        .fetch_optional(&s.db)
        .await?
        .ok_or(ApiError::NotFound("schedule"))
}

fn check(
    s: &AppState,
    kind: ScheduleKind,
    cron: &str,
    tables: &[String],
    options: &MaintenanceOptions,
) -> ApiResult<croner::Cron> {
    let c = parse_cron(cron).map_err(|m| ApiError::field("cron", "invalid_cron", m))?;
    // A cron firing every few seconds would queue runs faster than they can finish.
    let min = s.engine.min_schedule_interval;
    if let Some(gap) = shortest_gap(&c, Utc::now()) {
        if gap.to_std().unwrap_or_default() < min {
            return Err(ApiError::field(
                "cron",
                "too_frequent",
                format!(
                    "{cron:?} runs every {}s at times; schedules may run at most every {}s",
                    gap.num_seconds(),
                    min.as_secs()
                ),
            ));
        }
    }
    match kind.maintenance() {
        Some(kind) => super::maintenance::validate(&CreateMaintenance {
            kind,
            tables: tables.to_vec(),
            options: options.clone(),
        })?,
        // A backup or a drill covers the whole database and takes no maintenance options.
        None => {
            let mut errs = FieldErrors::default();
            if !tables.is_empty() {
                errs.add("tables", "not_applicable", format!("a {} schedule covers the whole database", kind.as_str()));
            }
            if *options != MaintenanceOptions::default() {
                errs.add("options", "not_applicable", format!("a {} schedule takes no options", kind.as_str()));
            }
            errs.into_result()?;
        }
    }
    Ok(c)
}

#[utoipa::path(get, path = "/v1/databases/{id}/schedules", tag = "maintenance", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = List<Schedule>)))]
async fn list_schedules(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<List<Schedule>>> {
    let db = visible(&s, &who, id).await?;
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} WHERE s.database_id = $1 ORDER BY s.created_at"))
        .bind(db.id)
        .fetch_all(&s.db)
        .await?;
    let items: Vec<Schedule> = rows.into_iter().map(Into::into).collect();
    let (items, next_cursor) = in_memory(items, &q, |s: &Schedule| (s.created_at, s.id))?;
    Ok(axum::Json(List { items, next_cursor }))
}

#[utoipa::path(post, path = "/v1/databases/{id}/schedules", tag = "maintenance", params(("id" = Uuid, Path)), request_body = CreateSchedule,
    responses((status = 201, body = Schedule), (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn create_schedule(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<CreateSchedule>,
) -> ApiResult<(StatusCode, axum::Json<Schedule>)> {
    let cron = check(&s, req.kind, &req.cron, &req.tables, &req.options)?;
    let db = visible(&s, &who, id).await?;
    let next = next_slot(&cron, Utc::now())
        .ok_or_else(|| ApiError::field("cron", "never_fires", "the expression has no future occurrence"))?;
    let sid = Uuid::new_v4();
    let mut tx = s.db.begin().await?;
    // Counted under the database's row lock, so concurrent creates cannot pass the cap together.
    // Only the tenant's own count: the backup policy's schedules must not eat its allowance
    // (nor make it depend on whether the policy ran yet).
    crate::catalog::record::lock(&mut tx, db.id).await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM schedules WHERE database_id = $1 AND origin = 'tenant'")
        .bind(db.id)
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_SCHEDULES_PER_DATABASE {
        return Err(ApiError::Conflict(
            "quota_exceeded",
            format!("a database may have at most {MAX_SCHEDULES_PER_DATABASE} schedules of its own (it has {count})"),
        ));
    }
    sqlx::query(
        "INSERT INTO schedules (id, database_id, kind, cron, tables, options, enabled, next_run_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
    )
    .bind(sid)
    .bind(db.id)
    .bind(req.kind.as_str())
    .bind(&req.cron)
    .bind(&req.tables)
    .bind(sqlx::types::Json(&req.options))
    .bind(req.enabled.unwrap_or(true))
    .bind(next)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(load(&s, db.id, sid).await?.into())))
}

#[utoipa::path(get, path = "/v1/databases/{id}/schedules/{schedule}", tag = "maintenance",
    params(("id" = Uuid, Path), ("schedule" = Uuid, Path)), responses((status = 200, body = Schedule)))]
async fn get_schedule(
    State(s): State<AppState>,
    who: Principal,
    Path((id, sid)): Path<(Uuid, Uuid)>,
) -> ApiResult<axum::Json<Schedule>> {
    let db = visible(&s, &who, id).await?;
    Ok(axum::Json(load(&s, db.id, sid).await?.into()))
}

#[utoipa::path(patch, path = "/v1/databases/{id}/schedules/{schedule}", tag = "maintenance",
    params(("id" = Uuid, Path), ("schedule" = Uuid, Path)), request_body = UpdateSchedule,
    responses((status = 200, body = Schedule), (status = 409, body = dbaas_client::Problem), (status = 422, body = dbaas_client::Problem)))]
async fn update_schedule(
    State(s): State<AppState>,
    who: Principal,
    Path((id, sid)): Path<(Uuid, Uuid)>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdateSchedule>,
) -> ApiResult<axum::Json<Schedule>> {
    let header_version = if_match(&headers)?;
    let db = visible(&s, &who, id).await?;
    let cur = load(&s, db.id, sid).await?;
    let kind = req.kind.unwrap_or(cur.kind);
    let cron_text = req.cron.clone().unwrap_or(cur.cron.clone());
    let tables = req.tables.clone().unwrap_or(cur.tables.clone());
    let options = req.options.clone().unwrap_or(cur.options.0.clone());
    let cron = check(&s, kind, &cron_text, &tables, &options)?;
    // A new expression (or re-enabling) starts from the next slot after now.
    let next = if cron_text != cur.cron || (req.enabled == Some(true) && !cur.enabled) {
        next_slot(&cron, Utc::now())
            .ok_or_else(|| ApiError::field("cron", "never_fires", "the expression has no future occurrence"))?
    } else {
        cur.next_run_at
    };
    let n = sqlx::query(
        "UPDATE schedules SET kind = $3, cron = $4, tables = $5, options = $6, enabled = $7, next_run_at = $8, version = version + 1 \
         WHERE id = $1 AND database_id = $2 AND ($9::bigint IS NULL OR version = $9)",
    )
    .bind(sid)
    .bind(db.id)
    .bind(kind.as_str())
    .bind(&cron_text)
    .bind(&tables)
    .bind(sqlx::types::Json(&options))
    .bind(req.enabled.unwrap_or(cur.enabled))
    .bind(next)
    .bind(header_version.or(req.version))
    .execute(&s.db)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(stale(header_version.is_some()));
    }
    Ok(axum::Json(load(&s, db.id, sid).await?.into()))
}

#[utoipa::path(delete, path = "/v1/databases/{id}/schedules/{schedule}", tag = "maintenance",
    params(("id" = Uuid, Path), ("schedule" = Uuid, Path)), responses((status = 204)))]
async fn delete_schedule(
    State(s): State<AppState>,
    who: Principal,
    Path((id, sid)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let db = visible(&s, &who, id).await?;
    let n = sqlx::query("DELETE FROM schedules WHERE id = $1 AND database_id = $2")
        .bind(sid)
        .bind(db.id)
        .execute(&s.db)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound("schedule"));
    }
    Ok(StatusCode::NO_CONTENT)
}
