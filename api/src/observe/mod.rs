//! Observability of the instances and databases the service manages: metrics collected in
//! the service under postgres_exporter's names ([`collect`]), kept in the state database and
//! rendered for Prometheus ([`render`], [`exposition`]), plus the service's own gauges
//! ([`service`]). Discovery, scrape and summary endpoints are in `http::prometheus`.

pub mod collect;
pub mod exposition;
pub mod hosts;
pub mod render;
pub mod service;
