//! The service's integration tests, in one binary: real PostgreSQL clusters, real
//! `dbaas-api` processes, the real terraform, pg_repack, Prometheus and Chromium. One module
//! per area; `common` is the harness they share.
//!
//! One binary rather than one per file: each file used to link the whole service on its own
//! (some 30 links of the same dependencies per build); filters still pick an area, e.g.
//! `cargo test -p dbaas-api --features test-hooks --test all adversarial::`.

mod common;

mod access_model;
mod adversarial;
mod adversarial_proxy;
mod backup_faults;
mod backups;
mod backups_s3;
mod bad_input;
mod certificates;
mod chaos;
mod dev_mode;
mod docs_links;
mod durability;
mod examples;
mod fairness;
mod faults;
mod hardening;
mod host_pool;
mod hosts;
mod lifecycle;
mod maintenance;
mod managed;
mod managed_faults;
mod managed_ssh;
mod metrics;
mod no_secret_in_logs;
mod oidc;
mod pitr;
mod pitr_faults;
mod pitr_instance;
mod placement_tls;
mod portal;
mod prometheus;
mod proxy;
mod readme_tour;
mod restorable;
mod restores;
mod scale;
mod schedules;
