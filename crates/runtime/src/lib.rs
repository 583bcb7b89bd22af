//! Process plumbing every sluice service shares: the `main` sequence
//! (config → telemetry → bind → run until SIGTERM → flush), the
//! configuration blocks every service reads ([`Common`]), connecting to
//! NATS and the store with the streams and tables declared ([`Backends`]),
//! the readiness check, what every gRPC server shares ([`grpc`]), and the
//! tasks' outbox relay ([`outbox`]).

#![forbid(unsafe_code)]

pub mod grpc;
pub mod outbox;
pub mod settle;
pub mod tasks;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sluice_bus::{Bus, QueueConfig};
use sluice_config::{ConfigError, Env, NatsConfig, StoreConfig, TelemetryConfig};
use sluice_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The configuration blocks every service reads, from the same variables.
#[derive(Debug, Clone, Serialize)]
pub struct Common {
    /// Queue behaviour (`SLUICE_QUEUE_*`, `SLUICE_DLQ_*`, `SLUICE_BUS_*`):
    /// every service declares the streams, so every one reads their limits.
    pub queue: QueueConfig,
    /// NATS (`SLUICE_NATS_*`).
    pub nats: NatsConfig,
    /// The store (`SLUICE_STORE_*`).
    pub store: StoreConfig,
    /// Logs, traces and metrics.
    pub telemetry: TelemetryConfig,
}

impl Common {
    /// Reads the shared blocks.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            queue: QueueConfig::from_env(env)?,
            nats: NatsConfig::from_env(env)?,
            store: StoreConfig::from_env(env)?,
            telemetry: TelemetryConfig::from_env(env)?,
        })
    }
}

/// When a service needs its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    /// Before it starts work: [`Backends::connect`] waits for them.
    Wait,
    /// Not to start: they are created in the background while it serves
    /// (readiness reports them missing until then).
    Background,
}

/// NATS with sluice's streams declared, and the store with its tables.
#[derive(Debug, Clone)]
pub struct Backends {
    /// JetStream.
    pub bus: Bus,
    /// The store.
    pub store: Store,
}

impl Backends {
    /// Connects to NATS as `sluice-<service>`, declares the streams, and
    /// connects the store, creating missing tables as `tables` says (when
    /// `SLUICE_STORE_CREATE_TABLES` allows).
    pub async fn connect(
        service: &str,
        common: &Common,
        tables: Tables,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let bus = Bus::connect(&common.nats, &format!("sluice-{service}")).await?;
        bus.declare_streams(&common.queue, common.nats.replicas)
            .await
            .context("declaring streams")?;
        let store = Store::connect(&common.store).await;
        if common.store.create_tables {
            match tables {
                Tables::Wait => store
                    .ensure_tables_retrying(shutdown)
                    .await
                    .context("creating tables")?,
                Tables::Background => {
                    let (store, stop) = (store.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        if let Err(e) = store.ensure_tables_retrying(&stop).await {
                            tracing::error!(error = %e, "cannot create tables");
                        }
                    });
                }
            }
        }
        Ok(Self { bus, store })
    }
}

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
    main_with(service, read, run, |b| b).await
}

/// [`main`], with `hook` applied to the tracer provider
/// ([`sluice_telemetry::init_with`]).
pub async fn main_with<C, F, Fut>(
    service: &'static str,
    read: fn(&Env) -> Result<C, ConfigError>,
    run: F,
    hook: sluice_telemetry::ProviderHook,
) -> !
where
    C: ServiceConfig,
    F: FnOnce(C, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if std::env::args().skip(1).any(|a| a == "--version") {
        println!("{}", version_line(service));
        std::process::exit(0);
    }
    let config = sluice_config::load_or_exit(service, read);
    let telemetry = match sluice_telemetry::init_with(service, config.telemetry(), hook) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sluice-{service}: {e}");
            std::process::exit(2);
        }
    };
    zero_metrics(service);
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

/// Sets the counters a service may only touch on a rare failure to 0 at
/// start, so the series exist before their first increment: a rate or an
/// alert over an absent series shows nothing, and the dashboards' and alerts'
/// metric names can be checked against a running service.
pub fn zero_metrics(service: &str) {
    const STEPS: [&str; 4] = ["validate", "transform", "store", "notify"];
    metrics::counter!("sluice.pull.restarts").absolute(0);
    match service {
        "gateway" => {
            metrics::counter!("sluice.gateway.throttled").absolute(0);
            metrics::counter!("sluice.gateway.shed").absolute(0);
        }
        "transformer" => {
            metrics::counter!("sluice.queues.dead_lettered").absolute(0);
        }
        "file-ingest" => {
            metrics::counter!("sluice.files.processed").absolute(0);
            metrics::counter!("sluice.files.bytes.inspected").absolute(0);
            for step in STEPS {
                metrics::counter!("sluice.files.step.failures", "step" => step).absolute(0);
                metrics::counter!("sluice.files.dead_lettered", "step" => step).absolute(0);
            }
        }
        "orchestrator" => {
            for status in ["CONFIRMED", "REJECTED"] {
                metrics::counter!("sluice.orchestrator.orders", "status" => status).absolute(0);
            }
        }
        _ => {}
    }
}

/// What `--version` prints: `sluice-<service> <version>`, and the source
/// revision when the build was given one in `SLUICE_REVISION` (`make images`
/// does).
pub fn version_line(service: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    match option_env!("SLUICE_REVISION").filter(|r| !r.is_empty()) {
        Some(rev) => format!("sluice-{service} {version} ({rev})"),
        None => format!("sluice-{service} {version}"),
    }
}

/// The admin endpoints every service serves: `/healthz` (the process is
/// alive), `/readyz` (answered by `ready`) and `/metrics` (Prometheus).
pub fn admin<S: Clone + Send + Sync + 'static>(
    ready: axum::routing::MethodRouter<S>,
) -> axum::Router<S> {
    axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", ready)
        .route(
            "/metrics",
            axum::routing::get(|| async { sluice_telemetry::metrics_handle().render() }),
        )
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
