//! Process plumbing every sluice service shares: the `main` sequence
//! (config → telemetry → bind → run until SIGTERM → flush) and the
//! readiness check.

#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use sluice_bus::Bus;
use sluice_config::{ConfigError, Env, TelemetryConfig};
use sluice_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `main` needs to know about a service's configuration.
pub trait ServiceConfig: Serialize + Sized {
    /// The telemetry block.
    fn telemetry(&self) -> &TelemetryConfig;
    /// The address to bind, and the variable that sets it (for the error message).
    fn listen(&self) -> (SocketAddr, &'static str);
}

/// Runs a service process: reads its configuration (a bad value exits 2
/// with one line naming the variable), starts telemetry, binds the listener
/// early, runs until SIGTERM/Ctrl-C, flushes telemetry, and exits.
pub async fn main<C, F, Fut>(
    service: &'static str,
    read: fn(&Env) -> Result<C, ConfigError>,
    run: F,
) -> !
where
    C: ServiceConfig,
    F: FnOnce(C, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = sluice_config::load_or_exit(service, read);
    let telemetry = match sluice_telemetry::init(service, config.telemetry()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sluice-{service}: {e}");
            std::process::exit(2);
        }
    };
    let (addr, var) = config.listen();
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sluice-{service}: cannot listen on {addr} ({var}): {e}");
            std::process::exit(2);
        }
    };
    tracing::info!(listen = %addr, "sluice-{service} starting");
    let shutdown = sluice_telemetry::shutdown_on_signals();
    let code = match run(config, listener, shutdown).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "sluice-{service} stopped");
            1
        }
    };
    telemetry.shutdown(Duration::from_secs(5)).await;
    std::process::exit(code)
}

/// Readiness: NATS connected and the store answering with every table in place.
pub async fn readiness(bus: &Bus, store: &Store) -> (http::StatusCode, String) {
    if !bus.is_connected() {
        return (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "nats: not connected".into(),
        );
    }
    if let Err(e) = store.ping().await {
        return (http::StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"));
    }
    (http::StatusCode::OK, "ready".into())
}
