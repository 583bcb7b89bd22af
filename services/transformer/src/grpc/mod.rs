//! The gRPC admin API: `EventBus` and `Queues`, with the standard health
//! service. Every call runs in a span that continues the caller's trace
//! (`traceparent` in the metadata), and is bounded by the caller's deadline
//! (`grpc-timeout`) and the server's own limit.

pub mod bus;
pub mod queues;

use sluice_proto::v1::event_bus_server::EventBusServer;
use sluice_proto::v1::queues_server::QueuesServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tower_http::trace::TraceLayer;

use crate::Shared;

/// Serves until `shutdown`; health turns NOT_SERVING first, so balancers
/// stop sending calls while the last ones finish.
pub async fn serve(
    state: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<EventBusServer<bus::BusApi>>().await;
    health
        .set_serving::<QueuesServer<queues::QueuesApi>>()
        .await;
    let stop = shutdown.clone();
    let draining = async move {
        stop.cancelled().await;
        health
            .set_not_serving::<EventBusServer<bus::BusApi>>()
            .await;
        health
            .set_not_serving::<QueuesServer<queues::QueuesApi>>()
            .await;
    };
    tonic::transport::Server::builder()
        .timeout(sluice_runtime::grpc::SERVER_TIMEOUT)
        // Failures are logged where they are understood (internal faults by
        // the error mapping); a NOT_FOUND is not worth an error line.
        .layer(
            TraceLayer::new_for_grpc()
                .make_span_with(sluice_runtime::grpc::span_for("transformer"))
                .on_failure(()),
        )
        .add_service(health_service)
        .add_service(EventBusServer::new(bus::BusApi {
            state: state.clone(),
        }))
        .add_service(QueuesServer::new(queues::QueuesApi { state }))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), draining)
        .await?;
    Ok(())
}
