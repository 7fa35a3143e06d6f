//! Metrics: Prometheus discovery targets and a database's metrics summary.

#[allow(unused_imports)]
use super::prelude::*;

/// One entry of Prometheus' `http_sd_config` format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PrometheusTarget {
    /// `host:port` to scrape (this API, as the caller reached it).
    pub targets: Vec<String>,
    /// `__metrics_path__` (the instance's scrape path), `instance`, `environment`,
    /// `dbaas_instance_kind`.
    pub labels: BTreeMap<String, String>,
}

/// A database's latest collected values; null until the first collection (every 15 s by
/// default) or when the instance could not be reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DatabaseMetrics {
    pub database_id: Uuid,
    /// When the instance was last read successfully.
    pub collected_at: Option<DateTime<Utc>>,
    pub size_bytes: Option<i64>,
    /// Sessions connected to the database, in any state.
    pub connections: Option<i64>,
    /// Commits and rollbacks per second between the last two collections.
    pub transactions_per_second: Option<f64>,
    pub commits: Option<i64>,
    pub rollbacks: Option<i64>,
    pub deadlocks: Option<i64>,
    /// Dead rows of the tables with the most (at most 5 tables).
    pub dead_tuples: Option<i64>,
    /// Highest dead/(live+dead) ratio over tables of 1000 rows or more.
    pub max_dead_tuple_ratio: Option<f64>,
    pub oldest_vacuum_age_seconds: Option<f64>,
    pub oldest_analyze_age_seconds: Option<f64>,
    pub last_backup_at: Option<DateTime<Utc>>,
    pub last_verified_at: Option<DateTime<Utc>>,
}
