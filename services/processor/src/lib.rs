//! The processor: the "Lambda behind the SQS queue". It consumes the ingest
//! work queue, applies each command to the store idempotently (events are
//! recorded, orders reserve stock and are confirmed or rejected), publishes
//! the resulting domain events to the bus, and dead-letters what cannot be
//! processed. See `consumer` for delivery handling and `work` for the
//! per-kind logic.

#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod consumer;
pub mod error;
pub mod work;

use std::sync::Arc;

use anyhow::Context as _;
use sluice_bus::Bus;
use sluice_runtime::{Backends, Tables};
use sluice_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// State shared by the consumer and the admin endpoints.
#[derive(Debug)]
pub struct State {
    /// Configuration.
    pub config: Config,
    /// JetStream.
    pub bus: Bus,
    /// The store.
    pub store: Store,
    /// The orchestrator's Workflows API (the order saga).
    pub workflows: sluice_proto::v1::workflows_client::WorkflowsClient<tonic::transport::Channel>,
}

/// Shared handle on [`State`].
pub type Shared = Arc<State>;

/// Connects, declares streams and tables, serves the admin endpoints on
/// `listener` and consumes until `shutdown` is cancelled; then drains.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Backends { bus, store } =
        Backends::connect("processor", &config.common, Tables::Wait, &shutdown).await?;
    let workflows = sluice_proto::v1::workflows_client::WorkflowsClient::new(
        tonic::transport::Endpoint::from_shared(config.orchestrator_url.clone())
            .context("SLUICE_ORCHESTRATOR_URL")?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_lazy(),
    );
    let state: Shared = Arc::new(State {
        config,
        bus,
        store,
        workflows,
    });

    let admin = axum::serve(listener, app::app(state.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let admin = tokio::spawn(async move { admin.await });
    let gauges = tokio::spawn(gauges(state.clone(), shutdown.clone()));
    let relay = tokio::spawn(sluice_runtime::outbox::relay(
        state.bus.clone(),
        state.store.clone(),
        state.config.outbox_grace,
        state
            .config
            .outbox_interval
            .max(std::time::Duration::from_millis(100)),
        shutdown.clone(),
    ));

    let result = consumer::run(state.clone(), shutdown.clone()).await;
    shutdown.cancel();
    let _ = gauges.await;
    let _ = relay.await;
    let _ = admin.await;
    result
}

/// Publishes queue lag and DLQ depth as gauges.
async fn gauges(state: Shared, shutdown: CancellationToken) {
    let consumer = state.bus.names().processor();
    loop {
        if let Ok(lag) = state.bus.queue_lag(&consumer).await {
            metrics::gauge!("sluice.processor.queue.lag").set(lag as f64);
        }
        if let Ok(depth) = state.bus.dlq_depth().await {
            metrics::gauge!("sluice.processor.dlq.depth").set(depth as f64);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(state.config.gauge_interval) => {}
        }
    }
}
