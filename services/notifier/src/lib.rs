//! The notifier: sluice's SNS. It keeps topics, serves them over gRPC to
//! the gateway, and stores every publish in JetStream (`notify.<topic>`)
//! before acknowledging it, so an acknowledged message is never lost
//! (it is kept for `SLUICE_QUEUE_RETENTION`).
//! Messages published by rules' `topic` targets arrive on the same
//! subjects.
//!
//! - `grpc`: the `Topics` API (topics, publishing, subscriptions).
//! - `subscriptions`: what a subscription is, and which messages it wants.
//! - `fanout`: topic messages → subscriptions (queues directly; http(s)
//!   and email through their own delivery subjects).
//! - `deliver`: one worker per http(s) and email subscription, with its
//!   retries and dead-letter queue; `webhook` (signed requests) and
//!   `email` (SMTP) make the attempts; `links` are the confirm and
//!   unsubscribe links.
//! - `app`: the admin endpoints.

#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod deliver;
pub mod email;
pub mod fanout;
pub mod grpc;
pub mod links;
pub mod subscriptions;
pub mod webhook;

use std::sync::Arc;

use anyhow::Context as _;
use sluice_bus::Bus;
use sluice_runtime::{Backends, Tables};
use sluice_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// State shared by the API and the admin endpoints.
#[derive(Debug)]
pub struct State {
    /// Configuration.
    pub config: Config,
    /// JetStream.
    pub bus: Bus,
    /// The store.
    pub store: Store,
    /// Every fan-out and delivery in flight (waited for at shutdown).
    pub tracker: TaskTracker,
    /// Which addresses webhooks may reach.
    pub policy: Arc<sluice_outbound::address::Policy>,
    /// The webhook client (guarded by `policy`).
    pub http: reqwest::Client,
    /// The SMTP client, if email is set up.
    pub mailer: Option<email::Mailer>,
    /// The http(s) and email subscriptions delivered to.
    pub registry: deliver::Registry,
}

/// Shared handle on [`State`].
pub type Shared = Arc<State>;

/// Connects, serves the admin endpoints on `listener` and the gRPC API on
/// its own address until `shutdown`, then lets the last calls finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let grpc_listener = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (SLUICE_NOTIFIER_GRPC_LISTEN)",
                config.grpc_listen
            )
        })?;
    let policy = Arc::new(config.address_policy());
    let roots = match &config.targets_ca_file {
        Some(path) => sluice_outbound::http::read_roots(path)
            .map_err(anyhow::Error::msg)
            .context("SLUICE_TARGETS_CA_FILE")?,
        None => Vec::new(),
    };
    let http = sluice_outbound::http::client(
        policy.clone(),
        concat!("sluice-notifier/", env!("CARGO_PKG_VERSION")),
        roots,
    )
    .context("building the HTTP client")?;
    let mailer = match &config.smtp {
        Some(smtp) => Some(
            email::Mailer::new(smtp, config.delivery.timeout)
                .map_err(anyhow::Error::msg)
                .context("setting up email (SLUICE_SMTP_*)")?,
        ),
        None => None,
    };
    let Backends { bus, store } =
        Backends::connect("notifier", &config.common, Tables::Wait, &shutdown).await?;
    let state: Shared = Arc::new(State {
        config,
        bus,
        store,
        tracker: TaskTracker::new(),
        policy,
        http,
        mailer,
        registry: deliver::Registry::default(),
    });
    let admin = axum::serve(listener, app::app(state.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let admin = tokio::spawn(async move { admin.await });
    let fanout = tokio::spawn(fanout::run(state.clone(), shutdown.clone()));
    let delivery = tokio::spawn(deliver::run(state.clone(), shutdown.clone()));
    tracing::info!("serving topics");
    let result = grpc::serve(state.clone(), grpc_listener, shutdown.clone()).await;
    shutdown.cancel();
    let _ = fanout.await;
    let _ = delivery.await;
    state.tracker.close();
    if tokio::time::timeout(state.config.shutdown_timeout, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown timeout: unfinished fan-outs and deliveries are tried again after their ack wait"
        );
    }
    let _ = admin.await;
    result
}
