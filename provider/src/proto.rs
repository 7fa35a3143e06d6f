//! Bindings generated at build time from `proto/` (see build.rs).
#![allow(clippy::all, clippy::pedantic, missing_docs, dead_code)]

pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

pub mod plugin {
    tonic::include_proto!("plugin");
}

pub mod grpc {
    pub mod health {
        pub mod v1 {
            tonic::include_proto!("grpc.health.v1");
        }
    }
}
