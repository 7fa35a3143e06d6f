//! terraform-provider-dbaas: started by Terraform, speaks plugin protocol v6 over gRPC.

use std::process::ExitCode;

mod cty;
mod framework;
mod oidc_login;
mod plugin;
mod proto;
mod provider_config;
mod resources;
mod util;

#[tokio::main]
async fn main() -> ExitCode {
    // stdout carries the handshake; logs go to stderr, which Terraform collects (TF_LOG).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TF_LOG_PROVIDER_DBAAS").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    if !plugin::started_by_terraform() {
        eprintln!(
            "This binary is a plugin for Terraform; it is not meant to be run by hand.\n\
             Configure it in a terraform block (source = \"dbaas/dbaas\") and run terraform init."
        );
        return ExitCode::from(1);
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match plugin::serve(resources::provider()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-dbaas: {e:#}");
            ExitCode::from(1)
        }
    }
}
