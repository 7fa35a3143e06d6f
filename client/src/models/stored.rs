//! Decoding the enums the state database stores as text: a value that is not one of the
//! enum's is an error ([`UnknownValue`]), never a default.

use super::*;

/// A stored text that names no variant of the enum it should decode to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue(pub String);

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnknownValue {}

/// `FromStr` through the enum's serde names (lowercase), for enums the API only serialises.
macro_rules! from_serde_name {
    ($($t:ty => $what:literal),*) => {$(
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                serde_json::from_value(serde_json::Value::String(s.to_string()))
                    .map_err(|_| format!("unknown {} {s:?}", $what))
            }
        }
    )*};
}

from_serde_name!(
    DatabaseMode => "database mode",
    PoolMode => "pool mode",
    CredentialKind => "credential kind",
    InstanceKind => "instance kind",
    HealthStatus => "health status",
    HostKind => "host kind",
    BackupStatus => "backup status",
    VerifyStatus => "verify status",
    BackupStoreKind => "backup store kind",
    ObjectLockMode => "object lock mode",
    BackupReason => "backup reason",
    ScheduleKind => "schedule kind",
    ArchivingState => "archiving state",
    TokenAccess => "token access"
);

macro_rules! stored_as_text {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = UnknownValue;
            fn try_from(s: String) -> Result<Self, UnknownValue> {
                s.parse().map_err(UnknownValue)
            }
        }
    )*};
}

stored_as_text!(
    OperationKind,
    OperationStatus,
    InstanceStatus,
    MaintenanceKind,
    DatabaseStatus,
    Access,
    CredentialStatus,
    Environment,
    SslMode,
    DatabaseMode,
    PoolMode,
    CredentialKind,
    InstanceKind,
    HealthStatus,
    HostKind,
    BackupStatus,
    VerifyStatus,
    BackupStoreKind,
    ObjectLockMode,
    BackupReason,
    ScheduleKind,
    ArchivingState,
    TokenAccess
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_errors() {
        assert_eq!(OperationKind::try_from("provision_database".to_string()), Ok(OperationKind::ProvisionDatabase));
        assert!(OperationKind::try_from("defragment".to_string()).is_err());
        assert!(Access::try_from("root".to_string()).is_err());
        assert!(DatabaseStatus::try_from("zombie".to_string()).is_err());
        assert_eq!(HostKind::try_from("ssh".to_string()), Ok(HostKind::Ssh));
        // A host row with another kind used to be taken for a local host.
        assert!(HostKind::try_from("telnet".to_string()).is_err());
    }
}
