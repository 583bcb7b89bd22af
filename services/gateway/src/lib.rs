//! The gateway: sluice's API Gateway. It authenticates and throttles
//! clients, validates requests, and answers 202 for events and orders only
//! once JetStream has acknowledged them; it serves synchronous reads
//! (event status, orders, stock) and writes (stock) from the store, the
//! dead-letter queue's listing and redrive, sluice queues' HTTP API, and
//! the event bus's admin API (buses, rules, targets, queues) through the
//! transformer's gRPC API.

#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod body;
pub mod buses;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod notifier;
pub mod openapi;
pub mod orchestrator;
pub mod routes;
pub mod throttle;
pub mod transformer;

use std::sync::Arc;

use anyhow::Context;
use sluice_bus::Bus;
use sluice_runtime::{Backends, Tables};
use sluice_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use app::app;
pub use config::Config;

/// State shared by all handlers.
#[derive(Debug)]
pub struct State {
    /// Configuration.
    pub config: Config,
    /// JetStream.
    pub bus: Bus,
    /// The store.
    pub store: Store,
    /// Credentials.
    pub auth: Arc<auth::Authenticator>,
    /// Per-principal rate limits.
    pub throttle: throttle::Throttle,
    /// The transformer's admin API.
    pub transformer: transformer::Transformer,
    /// The notifier's API.
    pub notifier: notifier::Notifier,
    /// The orchestrator's workflows API.
    pub orchestrator: orchestrator::Orchestrator,
    /// Which buses exist.
    pub buses: buses::BusCache,
    /// The object store, signing for the URL clients use.
    pub files_public: aws_sdk_s3::Client,
}

/// Shared handle on [`State`].
pub type Shared = Arc<State>;

/// Connects, declares streams and tables, and serves on `listener` until
/// `shutdown`; then finishes in-flight requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The ingest path does not need the store: serve at once, and keep
    // creating tables in the background until the store answers.
    let Backends { bus, store } =
        Backends::connect("gateway", &config.common, Tables::Background, &shutdown).await?;
    let transformer = transformer::Transformer::new(&config.transformer_url, config.grpc_timeout)
        .context("SLUICE_TRANSFORMER_URL")?;
    let notifier = notifier::Notifier::new(&config.notifier_url, config.grpc_timeout)
        .context("SLUICE_NOTIFIER_URL")?;
    let orchestrator =
        orchestrator::Orchestrator::new(&config.orchestrator_url, config.grpc_timeout)
            .context("SLUICE_ORCHESTRATOR_URL")?;
    let state: Shared = Arc::new(State {
        auth: auth::Authenticator::new(&config),
        transformer,
        notifier,
        orchestrator,
        buses: buses::BusCache::default(),
        files_public: config.files.public_client(),
        throttle: throttle::Throttle::new(config.rate_per_second, config.burst),
        config,
        bus,
        store,
    });
    tokio::spawn(app::shrink_throttle(state.clone(), shutdown.clone()));
    axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serving")?;
    Ok(())
}
