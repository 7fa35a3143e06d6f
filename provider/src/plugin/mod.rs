//! The go-plugin side of being a Terraform plugin: magic cookie, handshake line, AutoMTLS,
//! the unix socket, and go-plugin's own services beside the provider.

mod services;
mod tls;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use base64::Engine;
use tokio::net::UnixListener;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util_lite::Shutdown;

use crate::proto;

pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
const CORE_PROTOCOL_VERSION: u32 = 1;
const APP_PROTOCOL_VERSION: u32 = 6;

/// True when Terraform started us (the cookie is how go-plugin tells).
pub fn started_by_terraform() -> bool {
    std::env::var(MAGIC_COOKIE_KEY).is_ok_and(|v| v == MAGIC_COOKIE_VALUE)
}

/// Serves the provider until Terraform asks us to stop.
pub async fn serve(provider: crate::framework::server::ProviderServer) -> Result<()> {
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        if !versions.split(',').any(|v| v.trim() == APP_PROTOCOL_VERSION.to_string()) {
            bail!("Terraform offers plugin protocol versions {versions}; this provider speaks only version 6 (Terraform 1.0+)");
        }
    }
    let dir = match std::env::var("PLUGIN_UNIX_SOCKET_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::temp_dir(),
    };
    let socket = dir.join(format!("tf-provider-dbaas-{}-{}.sock", std::process::id(), rand_suffix()));
    let listener = UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    let _cleanup = RemoveOnDrop(socket.clone());

    let tls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !pem.trim().is_empty() => Some(tls::AutoMtls::new(&pem)?),
        _ => None,
    };
    let cert_field = tls
        .as_ref()
        .map(|t| base64::engine::general_purpose::STANDARD_NO_PAD.encode(&t.server_cert_der))
        .unwrap_or_default();
    // The handshake line is the only thing ever written to stdout.
    println!("{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{}|grpc|{cert_field}", socket.display());
    use std::io::Write;
    std::io::stdout().flush()?;

    let shutdown = Shutdown::default();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let acceptor = tls.map(|t| t.acceptor());
    let accept_shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = accept_shutdown.wait() => return,
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let tx = tx.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let conn = match acceptor {
                    Some(a) => match a.accept(stream).await {
                        Ok(s) => tls::Conn::Tls(Box::new(s)),
                        Err(e) => {
                            tracing::error!(error = %e, "TLS handshake with Terraform failed");
                            return;
                        }
                    },
                    None => tls::Conn::Plain(stream),
                };
                let _ = tx.send(Ok::<_, std::io::Error>(conn)).await;
            });
        }
    });

    let (health, controller, stdio, broker) = services::all(shutdown.clone());
    tonic::transport::Server::builder()
        .add_service(proto::tfplugin6::provider_server::ProviderServer::new(provider))
        .add_service(proto::grpc::health::v1::health_server::HealthServer::new(health))
        .add_service(proto::plugin::grpc_controller_server::GrpcControllerServer::new(controller))
        .add_service(proto::plugin::grpc_stdio_server::GrpcStdioServer::new(stdio))
        .add_service(proto::plugin::grpc_broker_server::GrpcBrokerServer::new(broker))
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown.clone().wait_owned())
        .await?;
    Ok(())
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A tiny shutdown signal (Notify + flag), so we do not pull in tokio-util for one type.
mod tokio_util_lite {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use tokio::sync::Notify;

    #[derive(Clone, Default)]
    pub struct Shutdown(Arc<(AtomicBool, Notify)>);

    impl Shutdown {
        pub fn trigger(&self) {
            self.0 .0.store(true, Ordering::SeqCst);
            self.0 .1.notify_waiters();
        }
        pub async fn wait(&self) {
            loop {
                let notified = self.0 .1.notified();
                if self.0 .0.load(Ordering::SeqCst) {
                    return;
                }
                notified.await;
            }
        }
        pub async fn wait_owned(self) {
            self.wait().await
        }
    }
}

pub use tokio_util_lite::Shutdown as ShutdownSignal;
