//! Hosts: the machines themselves are `dbaas-hosts`; registering one (validation, discovery,
//! the stored row) is the service's.

pub use dbaas_hosts::*;
pub mod register;
