//! `GET /v1/databases`: the databases a caller may see, filtered and paged; with `ids` and
//! `include`, many databases read whole in one call (a Terraform refresh reads its databases
//! this way instead of two calls each).

use std::collections::HashMap;

use axum::extract::State;
use dbaas_client::{DatabaseStatus, Environment, List};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::credentials::{list_key, listed, to_model as credential_model};
use super::extract::ApiQuery;
use super::pagination::{finish, Page};
use super::tenants::visible_tenant;
use crate::auth::Principal;
use crate::catalog::reconcile;
use crate::catalog::record::{self, DatabaseRow, DATABASE_COLUMNS, DATABASE_FROM, DATABASE_LIST_COLUMNS};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Ids one list may name.
pub const MAX_IDS: usize = 100;
/// Items per page when credentials are included (each carries its passwords and CA).
const MAX_LIMIT_WITH_CREDENTIALS: u32 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only this tenant's databases (admin); tenants always see only their own.
    tenant: Option<String>,
    environment: Option<Environment>,
    instance: Option<String>,
    status: Option<DatabaseStatus>,
    /// Only databases whose name contains this (case-insensitive; at most 63 characters).
    search: Option<String>,
    /// Only these databases: at most 100 ids, comma-separated. An id that is not found, not
    /// yours or deleted is left out, as any filter leaves a database out.
    ids: Option<String>,
    /// What each item carries besides the record, comma-separated: `drift` (the stored
    /// comparison with the instance's catalog, as a single GET returns it) and `credentials`
    /// (the database's live credentials with their passwords, as
    /// `GET /v1/databases/{id}/credentials` lists them; pages of at most 100).
    include: Option<String>,
    /// Include deleted databases.
    #[serde(default)]
    include_deleted: bool,
    /// Items per page, by tenant and name (default 100, max 1000).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// What a list item may carry besides the record (`include=`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Includes {
    drift: bool,
    credentials: bool,
}

impl Includes {
    fn parse(text: Option<&str>) -> ApiResult<Self> {
        let mut inc = Self::default();
        for part in text.into_iter().flat_map(|t| t.split(',')) {
            match part.trim() {
                "drift" => inc.drift = true,
                "credentials" => inc.credentials = true,
                other => {
                    return Err(ApiError::field(
                        "include",
                        "invalid_include",
                        format!("{other:?} is not one of: drift, credentials"),
                    ))
                }
            }
        }
        Ok(inc)
    }
}

/// The `ids` filter: distinct UUIDs, at most [`MAX_IDS`].
fn parse_ids(text: Option<&str>) -> ApiResult<Option<Vec<Uuid>>> {
    let Some(text) = text else { return Ok(None) };
    if text.split(',').count() > MAX_IDS {
        return Err(ApiError::field("ids", "too_many", format!("at most {MAX_IDS} ids in one list")));
    }
    let mut ids = Vec::new();
    for part in text.split(',') {
        let id: Uuid = part.trim().parse().map_err(|_| {
            ApiError::field("ids", "invalid_id", format!("{:?} is not a database id (a UUID)", part.trim()))
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(Some(ids))
}

#[utoipa::path(get, path = "/v1/databases", tag = "databases", params(ListQuery),
    responses((status = 200, body = List<dbaas_client::Database>)))]
pub(super) async fn list_databases(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<axum::Json<List<dbaas_client::Database>>> {
    // A tenant token's own tenant is known; an admin's `tenant=` is looked up by the list's
    // own statement (one round trip fewer per page), and only an empty page asks whether
    // the tenant exists (404) or has nothing to show.
    let (tenant, tenant_name) = match (&q.tenant, &who.tenant) {
        (Some(name), Some(_)) => (Some(visible_tenant(&s.db, &who, name).await?.0), None),
        (Some(name), None) => (None, Some(name.as_str())),
        (None, _) => (who.tenant_filter(), None),
    };
    let include = Includes::parse(q.include.as_deref())?;
    let ids = parse_ids(q.ids.as_deref())?;
    let page = Page::<(String, String, Uuid)>::new(q.limit, q.cursor.as_deref())?;
    if include.credentials && page.limit > MAX_LIMIT_WITH_CREDENTIALS {
        return Err(ApiError::field(
            "limit",
            "out_of_range",
            format!("at most {MAX_LIMIT_WITH_CREDENTIALS} items a page with include=credentials"),
        ));
    }
    if q.search.as_ref().is_some_and(|t| t.chars().count() > 63) {
        return Err(ApiError::field("search", "too_long", "at most 63 characters (a database name's length)"));
    }
    // A substring of the name; LIKE's wildcards in it are data.
    let search = q
        .search
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| format!("%{}%", t.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let (after_tenant, after_name, after_id) = match page.after.clone() {
        Some((t, n, i)) => (Some(t), Some(n), Some(i)),
        None => (None, None, None),
    };
    // Credentials carry the instance's CA certificate; a plain list does not.
    let columns = if include.credentials { DATABASE_COLUMNS } else { DATABASE_LIST_COLUMNS };
    // One statement per page, whatever its size (the latest backup and drill are lateral
    // joins on `backups_database`); ordered by the unique (tenant, name, id). Within one
    // tenant the order is (name, id), which the index `databases_tenant_name_id` gives
    // directly: a page then reads its own rows only, however many the tenant has, instead
    // of sorting them all (and joining their backups) for every page.
    let filters = "($2::text IS NULL OR i.environment = $2) AND ($3::text IS NULL OR i.name = $3) \
         AND ($4::text IS NULL OR d.status = $4) AND ($5 OR d.status <> 'deleted') \
         AND ($10::text IS NULL OR d.name ILIKE $10) AND ($11::uuid[] IS NULL OR d.id = ANY($11))";
    let sql = match (tenant, tenant_name) {
        (Some(_), _) => format!(
            "SELECT {columns} FROM {DATABASE_FROM} WHERE d.tenant_id = $1 AND {filters} \
             AND ($8::text IS NULL OR (d.name, d.id) > ($8, $9)) ORDER BY d.name, d.id LIMIT $6"
        ),
        (None, Some(_)) => format!(
            "SELECT {columns} FROM {DATABASE_FROM} WHERE d.tenant_id = \
             (SELECT n.id FROM tenants n WHERE n.name = $12 AND n.deleted_at IS NULL) AND {filters} \
             AND ($8::text IS NULL OR (d.name, d.id) > ($8, $9)) ORDER BY d.name, d.id LIMIT $6"
        ),
        (None, None) => format!(
            "SELECT {columns} FROM {DATABASE_FROM} WHERE ($1::uuid IS NULL OR d.tenant_id = $1) \
             AND {filters} AND ($7::text IS NULL OR (t.name, d.name, d.id) > ($7, $8, $9)) \
             ORDER BY t.name, d.name, d.id LIMIT $6"
        ),
    };
    let rows: Vec<DatabaseRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(q.environment.map(|e| e.as_str()))
        .bind(&q.instance)
        .bind(q.status.map(|st| st.as_str()))
        .bind(q.include_deleted)
        .bind(page.fetch())
        .bind(after_tenant)
        .bind(after_name)
        .bind(after_id)
        .bind(search)
        .bind(ids)
        .bind(tenant_name)
        .fetch_all(&s.db)
        .await?;
    if let (true, Some(name)) = (rows.is_empty(), tenant_name) {
        visible_tenant(&s.db, &who, name).await?;
    }
    let (rows, next_cursor) = finish(rows, page.limit, |r| (r.tenant_name.clone(), r.name.clone(), r.id));
    let items = with_includes(&s, &rows, include).await?;
    Ok(axum::Json(List { items, next_cursor }))
}

/// The page's models with what `include` asked for: one query per kind for the whole page.
async fn with_includes(
    s: &AppState,
    rows: &[DatabaseRow],
    include: Includes,
) -> ApiResult<Vec<dbaas_client::Database>> {
    let mut items: Vec<_> = rows.iter().map(DatabaseRow::to_model).collect();
    if include.drift {
        // As a single GET: only a database whose record should match the catalog has drift.
        let comparable: Vec<Uuid> = rows
            .iter()
            .filter(|r| matches!(r.status(), DatabaseStatus::Ready | DatabaseStatus::Retained | DatabaseStatus::Failed))
            .map(|r| r.id)
            .collect();
        // Only those are asked for, so the others find nothing.
        let mut drift = reconcile::cached_many(s, &comparable).await?;
        for item in &mut items {
            item.drift = drift.remove(&item.id);
        }
    }
    if include.credentials {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut by_db: HashMap<Uuid, Vec<_>> = HashMap::new();
        for c in record::credentials_of(&s.db, &ids).await?.into_iter().filter(listed) {
            by_db.entry(c.database_id).or_default().push(c);
        }
        for (item, row) in items.iter_mut().zip(rows) {
            let mut creds = by_db.remove(&row.id).unwrap_or_default();
            creds.sort_by_key(list_key);
            item.credentials = Some(creds.iter().map(|c| credential_model(s, row, c)).collect::<ApiResult<_>>()?);
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_and_ids_are_parsed_strictly() {
        assert_eq!(Includes::parse(None).unwrap(), Includes::default());
        assert_eq!(Includes::parse(Some("drift, credentials")).unwrap(), Includes { drift: true, credentials: true });
        assert!(Includes::parse(Some("drift,secrets")).is_err());
        assert!(Includes::parse(Some("")).is_err());
        let id = Uuid::new_v4();
        assert_eq!(parse_ids(Some(&format!("{id},{id}"))).unwrap(), Some(vec![id]));
        assert!(parse_ids(Some("not-a-uuid")).is_err());
        assert!(parse_ids(Some("")).is_err());
        let many: Vec<String> = (0..=MAX_IDS).map(|_| Uuid::new_v4().to_string()).collect();
        assert!(parse_ids(Some(&many.join(","))).is_err());
        assert!(parse_ids(Some(&many[..MAX_IDS].join(","))).unwrap().is_some_and(|v| v.len() == MAX_IDS));
    }
}
