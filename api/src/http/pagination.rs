//! Cursor pagination of list endpoints: `?limit=` (1-1000, default 100) and `?cursor=` (the
//! `next_cursor` of the previous page). Each list orders by a unique key; a cursor is that key
//! of the page's last item, encoded (base64url of a JSON array), so a page starts right after
//! it however rows were added or removed meanwhile (keyset pagination: no OFFSET, no rows
//! skipped or repeated, the same cost on page 1 and page 100).

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// `?limit=&cursor=` of a list without other filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (default 100, max 1000).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of a list read whole (lists bounded by design: hosts, instances, stores, policies,
/// a database's credentials and schedules), `rows` already sorted by `key`.
pub fn in_memory<R, K>(rows: Vec<R>, q: &PageQuery, key: impl Fn(&R) -> K) -> ApiResult<(Vec<R>, Option<String>)>
where
    K: Serialize + DeserializeOwned + PartialOrd,
{
    let page = Page::<K>::new(q.limit, q.cursor.as_deref())?;
    let rows: Vec<R> = match &page.after {
        Some(after) => rows.into_iter().filter(|r| key(r) > *after).collect(),
        None => rows,
    };
    Ok(finish(rows, page.limit, key))
}

/// A page request, validated.
#[derive(Debug, Clone)]
pub struct Page<K> {
    /// Items on this page.
    pub limit: u32,
    /// The sort key after which the page starts.
    pub after: Option<K>,
}

impl<K: DeserializeOwned> Page<K> {
    pub fn new(limit: Option<u32>, cursor: Option<&str>) -> ApiResult<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::field("limit", "out_of_range", format!("limit must be 1-{MAX_LIMIT}")));
        }
        let after = cursor.map(decode).transpose()?;
        Ok(Self { limit, after })
    }

    /// What to ask the database for: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

fn decode<K: DeserializeOwned>(cursor: &str) -> ApiResult<K> {
    let bad = || ApiError::field("cursor", "invalid", "not a cursor this list returned");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

fn encode<K: Serialize>(key: &K) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// Cuts the fetched rows (`limit + 1` at most) to the page and returns the cursor of the
/// next page when there is one.
pub fn finish<R, K: Serialize>(mut rows: Vec<R>, limit: u32, key: impl Fn(&R) -> K) -> (Vec<R>, Option<String>) {
    let limit = limit as usize;
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(|r| encode(&key(r)));
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_field_errors() {
        let (rows, next) = finish(vec![1, 2, 3], 2, |r| ("k".to_string(), *r));
        assert_eq!(rows, vec![1, 2]);
        let page: Page<(String, i32)> = Page::new(Some(2), next.as_deref()).unwrap();
        assert_eq!(page.after, Some(("k".to_string(), 2)));
        assert_eq!(finish(vec![1, 2], 2, |r| *r), (vec![1, 2], None));
        for bad in ["%%%", "bm90IGpzb24", ""] {
            assert!(Page::<(String, i32)>::new(None, Some(bad)).is_err(), "{bad}");
        }
        assert!(Page::<i32>::new(Some(0), None).is_err());
        assert!(Page::<i32>::new(Some(1001), None).is_err());
        assert_eq!(Page::<i32>::new(None, None).unwrap().limit, DEFAULT_LIMIT);
    }
}
