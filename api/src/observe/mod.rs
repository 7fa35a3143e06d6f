//! Observability of the instances and databases the service manages: metrics collected in
//! the service under postgres_exporter's names ([`collect`], with point-in-time figures from [`archive`]), kept in the state database and
//! rendered for Prometheus ([`render`], [`exposition`]), plus the service's own gauges
//! ([`service`]). Discovery, scrape and summary endpoints are in `http::prometheus`.

pub mod archive;
pub mod collect;
pub mod exposition;
pub mod hosts;
pub mod render;
pub mod service;
