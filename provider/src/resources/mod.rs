//! The provider's resources, data sources and ephemeral resources: one file each.

use std::sync::Arc;

use crate::framework::server::ProviderServer;

mod common;
mod database;
mod database_data;
mod databases_data;
mod instance;
mod instance_data;
mod lease;
mod tenant;
mod token;

pub fn provider() -> ProviderServer {
    ProviderServer::new(
        vec![
            Arc::new(database::Database),
            Arc::new(tenant::Tenant),
            Arc::new(token::Token),
            Arc::new(instance::Instance),
        ],
        vec![
            Arc::new(database_data::DatabaseData),
            Arc::new(instance_data::InstanceData),
            Arc::new(databases_data::DatabasesData),
        ],
        vec![Arc::new(lease::Lease)],
    )
}
