//! The provider's resources, data sources and ephemeral resources: one file each.

use std::sync::Arc;

use crate::framework::server::ProviderServer;

mod backups_data;
mod common;
mod credentials;
mod database;
mod database_data;
mod database_model;
mod databases_data;
mod instance;
mod instance_data;
mod lease;
mod maintenance_schedule;
mod tenant;
mod token;

pub fn provider() -> ProviderServer {
    ProviderServer::new(
        Arc::new(crate::provider_config::Block),
        vec![
            Arc::new(database::Database),
            Arc::new(tenant::Tenant),
            Arc::new(token::Token),
            Arc::new(instance::Instance),
            Arc::new(maintenance_schedule::MaintenanceSchedule),
        ],
        vec![
            Arc::new(database_data::DatabaseData),
            Arc::new(instance_data::InstanceData),
            Arc::new(databases_data::DatabasesData),
            Arc::new(backups_data::BackupsData),
        ],
        vec![Arc::new(lease::Lease), Arc::new(credentials::Credentials)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::resource::{DataSource, EphemeralResource, Resource};
    use crate::framework::Schema;

    fn check(dir: &str, type_name: &str, schema: Schema) {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(dir)
            .join(format!("{}.md", type_name.trim_start_matches("dbaas_")));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|_| panic!("{} is missing", file.display()));
        assert!(text.contains(&format!("# {type_name}")), "{} does not title {type_name}", file.display());
        for a in &schema.block.attrs {
            assert!(text.contains(&format!("`{}`", a.name)), "{} does not document `{}`", file.display(), a.name);
        }
        assert!(
            text.contains("## Example Usage") && text.contains("```terraform"),
            "{} has no example",
            file.display()
        );
    }

    #[test]
    fn docs_describe_every_attribute() {
        for r in [
            &database::Database as &dyn Resource,
            &tenant::Tenant,
            &token::Token,
            &instance::Instance,
            &maintenance_schedule::MaintenanceSchedule,
        ] {
            check("resources", r.type_name(), r.schema());
            assert!(
                r.schema().block.attrs.iter().all(|a| !a.description.is_empty()),
                "{}: attribute without description",
                r.type_name()
            );
        }
        for d in [
            &database_data::DatabaseData as &dyn DataSource,
            &instance_data::InstanceData,
            &databases_data::DatabasesData,
            &backups_data::BackupsData,
        ] {
            check("data-sources", d.type_name(), d.schema());
        }
        check("ephemeral-resources", lease::Lease.type_name(), lease::Lease.schema());
        check("ephemeral-resources", credentials::Credentials.type_name(), credentials::Credentials.schema());
    }
}
