//! go-plugin's services: health ("plugin" is SERVING), controller (Shutdown), stdio (we log
//! to stderr, which go-plugin reads directly, so the stream stays quiet) and the broker
//! (accepted, unused: this provider opens no extra connections).

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::ShutdownSignal;
use crate::proto::grpc::health::v1 as health;
use crate::proto::plugin as pb;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub struct Health;
pub struct Controller(ShutdownSignal);
pub struct Stdio(ShutdownSignal);
pub struct Broker(ShutdownSignal);

pub fn all(s: ShutdownSignal) -> (Health, Controller, Stdio, Broker) {
    (Health, Controller(s.clone()), Stdio(s.clone()), Broker(s))
}

/// A stream that yields nothing and ends at shutdown.
fn quiet<T: Send + 'static>(s: ShutdownSignal) -> BoxStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<T, Status>>(1);
    tokio::spawn(async move {
        s.wait().await;
        drop(tx);
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[tonic::async_trait]
impl health::health_server::Health for Health {
    async fn check(
        &self,
        _r: Request<health::HealthCheckRequest>,
    ) -> Result<Response<health::HealthCheckResponse>, Status> {
        Ok(Response::new(health::HealthCheckResponse {
            status: health::health_check_response::ServingStatus::Serving as i32,
        }))
    }
    type WatchStream = BoxStream<health::HealthCheckResponse>;
    async fn watch(&self, _r: Request<health::HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch is not supported"))
    }
}

#[tonic::async_trait]
impl pb::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _r: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        tracing::debug!("Terraform asked the provider to shut down");
        self.0.trigger();
        Ok(Response::new(pb::Empty {}))
    }
}

#[tonic::async_trait]
impl pb::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<pb::StdioData>;
    async fn stream_stdio(&self, _r: Request<()>) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(quiet(self.0.clone())))
    }
}

#[tonic::async_trait]
impl pb::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<pb::ConnInfo>;
    async fn start_stream(
        &self,
        r: Request<Streaming<pb::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut incoming = r.into_inner();
        // Drain what the client sends so its side of the stream never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = incoming.message().await {} });
        Ok(Response::new(quiet(self.0.clone())))
    }
}
