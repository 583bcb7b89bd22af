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

use crate::Shared;

/// Serves until `shutdown`; health turns NOT_SERVING first, so balancers
/// stop sending calls while the last ones finish.
pub async fn serve(
    state: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use tonic::server::NamedService;
    let routes = tonic::service::Routes::new(EventBusServer::new(bus::BusApi {
        state: state.clone(),
    }))
    .add_service(QueuesServer::new(queues::QueuesApi { state }));
    sluice_runtime::grpc::serve(
        "transformer",
        &[
            <EventBusServer<bus::BusApi> as NamedService>::NAME,
            <QueuesServer<queues::QueuesApi> as NamedService>::NAME,
        ],
        routes,
        listener,
        shutdown,
    )
    .await?;
    Ok(())
}
