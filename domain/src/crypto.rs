//! Secrets: the `dbaas-crypto` crate (master key, SCRAM verifiers, generated passwords and
//! tokens), re-exported under the path the service's modules use.

pub use dbaas_crypto::*;
