//! The `dbaas_database` resource's model: its attributes (hence its schema) and its state.

use dbaas_client::Access;

use super::database_data::DatabaseDataModel;
use crate::framework::{model, Field, List, Map, Timeouts};

const ROLE: &str = "Login role name for this access level.";
const PASSWORD: &str = "Password of the role.";
const URI: &str = "Connection URI (`sslmode=require`).";

model! {
    /// `dbaas_database` as Terraform holds it.
    pub struct DatabaseModel {
        id: Field<String> => computed("Database id in the dbaas API.").keep(),
        name: Field<String> => required("Database name within the tenant: lower-case letters, digits and `-`. The physical name is `<tenant>_<name>` (`_` cannot occur in names, so the mapping is injective).").replace(),
        tenant: Field<String> => optional_computed("Tenant owning the database; defaults to the token's tenant (admin tokens must set it).").replace().keep(),
        instance: Field<String> => optional_computed("Instance to create the database on; exclusive with `placement`. Computed when placement chooses.").replace().keep(),
        placement: Field<PlacementModel> => nested("Let the service choose the least-loaded instance matching these; used when the database is created."),
        mode: Field<String> => optional_computed("`standard` or `protected` (default: `protected` in prod). Destroying a protected database keeps it as `retained`; declaring it again re-adopts it with its data."),
        extensions: Field<List<String>> => optional_computed("Extensions to install (must be allowed on the instance)."),
        connection_limit: Field<i64> => optional_computed("Maximum concurrent connections; -1 for no limit (default)."),
        pool_mode: Field<String> => optional_computed("How the routing proxy pools its connections: `session` (default) or `transaction` (many more clients than server connections; no session state between transactions, and no protocol-level prepared statements with pgbouncer 1.18)."),
        restore_from: Field<RestoreFromModel> => nested("Create the database from a backup of the same tenant (also of a database deleted since): provisioned as usual, then filled by a restore run as its own admin role, in one transaction, checked against the backup's row counts. Used when the database is created; changing it later restores nothing (use the API's in-place restore)."),
        backup_retention_days: Field<i64> => optional("Days its backups are kept (default: the environment's policy: 35 in prod, 14 in preprod, 7 in sandbox; within the bounds the platform admins set)."),
        backup_store: Field<String> => optional("Backup store its backups go to (default: the only store serving its environment)."),
        rotation_triggers: Field<Map<String>> => optional("Per access level (`read`, `write`, `admin`): any value; changing a value rotates that role's password (adding a key only records it)."),
        physical_name: Field<String> => computed("Database name on the instance.").keep(),
        environment: Field<String> => computed("Environment of the instance.").keep(),
        host: Field<String> => computed("Host clients connect to (the routing proxy's when the instance's host runs one).").keep(),
        port: Field<i64> => computed("Port clients connect to (the routing proxy's when the instance's host runs one).").keep(),
        status: Field<String> => computed("Status in the service (`ready` once provisioned)."),
        read_role: Field<String> => computed(ROLE).keep(),
        read_password: Field<String> => computed(PASSWORD).sensitive().keep(),
        read_uri: Field<String> => computed(URI).sensitive().keep(),
        write_role: Field<String> => computed(ROLE).keep(),
        write_password: Field<String> => computed(PASSWORD).sensitive().keep(),
        write_uri: Field<String> => computed(URI).sensitive().keep(),
        admin_role: Field<String> => computed(ROLE).keep(),
        admin_password: Field<String> => computed(PASSWORD).sensitive().keep(),
        admin_uri: Field<String> => computed(URI).sensitive().keep(),
        timeouts: Field<Timeouts>,
    }
}

model! {
    /// `restore_from = { backup }`.
    pub struct RestoreFromModel {
        backup: Field<String> => required("Id of a succeeded backup (see the `dbaas_backups` data source)."),
    }
}

model! {
    /// `placement = { environment, labels }`.
    pub struct PlacementModel {
        environment: Field<String> => required("`sandbox`, `preprod` or `prod`; placement never crosses environments."),
        labels: Field<Map<String>> => optional("Labels the instance must carry."),
    }
}

impl DatabaseModel {
    /// The state: the service's view (shared with the data source) plus what only the
    /// configuration or prior state holds (`placement`, `rotation_triggers`, `timeouts`).
    pub fn from_api(data: DatabaseDataModel, config_or_prior: &DatabaseModel) -> Self {
        // Spelled out field by field: an attribute added to either model fails to compile
        // here until it is mapped.
        let DatabaseDataModel {
            id,
            tenant,
            name,
            instance,
            mode,
            physical_name,
            environment,
            host,
            status,
            read_role,
            write_role,
            admin_role,
            port,
            connection_limit,
            pool_mode,
            extensions,
            read_password,
            write_password,
            admin_password,
            read_uri,
            write_uri,
            admin_uri,
        } = data;
        Self {
            id,
            name,
            tenant,
            instance,
            placement: config_or_prior.placement.clone(),
            mode,
            extensions,
            connection_limit,
            pool_mode,
            restore_from: config_or_prior.restore_from.clone(),
            backup_retention_days: config_or_prior.backup_retention_days.clone(),
            backup_store: config_or_prior.backup_store.clone(),
            rotation_triggers: config_or_prior.rotation_triggers.clone(),
            physical_name,
            environment,
            host,
            port,
            status,
            read_role,
            read_password,
            read_uri,
            write_role,
            write_password,
            write_uri,
            admin_role,
            admin_password,
            admin_uri,
            timeouts: config_or_prior.timeouts.clone(),
        }
    }

    /// The password and URI of one access level.
    pub fn credential_mut(&mut self, a: Access) -> (&mut Field<String>, &mut Field<String>) {
        match a {
            Access::Read => (&mut self.read_password, &mut self.read_uri),
            Access::Write => (&mut self.write_password, &mut self.write_uri),
            Access::Admin => (&mut self.admin_password, &mut self.admin_uri),
        }
    }
}
