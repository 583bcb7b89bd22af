//! The transformer: sluice's EventBridge. It keeps buses, rules (event
//! patterns, state, up to five targets each) and queues, serves them over
//! gRPC to the gateway, and routes every bus event: the router matches it
//! against its bus's enabled rules and stores one delivery per (rule,
//! target); each target's own consumer delivers them (HTTP, a sluice queue,
//! a topic, a workflow) with the target's input transformation, retry
//! policy, concurrency cap, rate limit and dead-letter queue.
//!
//! - `model`: what a rule and a target are, checked and compiled.
//! - `registry`: the compiled rules every replica routes by, kept current.
//! - `router`: bus events → deliveries.
//! - `deliver`: deliveries → targets.
//! - `grpc`: the admin API.

#![forbid(unsafe_code)]

pub use sluice_outbound::address;
pub mod app;
pub mod config;
pub mod deliver;
pub mod error;
pub mod grpc;
pub mod model;
pub mod presence;
pub mod registry;
pub mod replay;
pub mod router;
pub mod scheduler;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use sluice_bus::Bus;
use sluice_proto::v1::workflows_client::WorkflowsClient;
use sluice_runtime::{Backends, Tables};
use sluice_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// State shared by the router, the delivery workers and the admin API.
#[derive(Debug)]
pub struct State {
    /// Configuration.
    pub config: Config,
    /// JetStream.
    pub bus: Bus,
    /// The store.
    pub store: Store,
    /// The rules this replica routes by.
    pub registry: registry::Registry,
    /// Which addresses HTTP targets may reach.
    pub policy: Arc<address::Policy>,
    /// The HTTP client of every HTTP target.
    pub http: reqwest::Client,
    /// OAuth tokens of HTTP targets.
    pub oauth: deliver::oauth::Tokens,
    /// The Kafka brokers of `kafka` targets.
    pub kafka: deliver::kafka::Producer,
    /// The orchestrator, when configured.
    pub workflows: Option<WorkflowsClient<tonic::transport::Channel>>,
    /// How many replicas share the work.
    pub presence: presence::Presence,
    /// The replays this replica runs.
    pub replays: replay::Running,
    /// Wakes the delivery worker of a subject that has work.
    pub bells: deliver::Bells,
    /// Every routing and delivery in flight (waited for at shutdown).
    pub tracker: TaskTracker,
    /// True once the rules were loaded.
    pub loaded: AtomicBool,
    /// Held across a reload's store read and its swap, so reloads apply in
    /// the order they read (a later read always wins).
    pub reload_lock: tokio::sync::Mutex<()>,
}

/// Shared handle on [`State`].
pub type Shared = Arc<State>;

fn ctx(state: &State) -> model::Ctx<'_> {
    model::Ctx {
        policy: &state.policy,
        default_concurrency: state.config.default_concurrency,
        schedules: crate::model::schedule::Allow {
            seconds: state.config.schedule_allow_seconds,
        },
        stored: true,
    }
}

/// Reloads the rules of `bus` from the store (a failure is logged; the
/// periodic reload catches up).
pub async fn reload_bus(state: &State, bus: &str) {
    let _order = state.reload_lock.lock().await;
    match state.store.rules_of(bus).await {
        Ok(records) => state.registry.load_bus(bus, &records, &ctx(state)),
        Err(e) => {
            tracing::warn!(%bus, error = %e, "cannot reload the bus's rules; the next periodic reload will")
        }
    }
}

/// Reloads one rule from the store (absent there: removed here).
pub async fn reload_rule(state: &State, bus: &str, name: &str) {
    let _order = state.reload_lock.lock().await;
    match state.store.rule(bus, name).await {
        Ok(record) => state
            .registry
            .load_rule(bus, name, record.as_ref(), &ctx(state)),
        Err(e) => {
            tracing::warn!(%bus, rule = %name, error = %e, "cannot reload the rule; the next periodic reload will")
        }
    }
}

/// Reloads every rule from the store.
pub async fn reload_all(state: &State) -> Result<(), sluice_store::StoreError> {
    let _order = state.reload_lock.lock().await;
    let records = state.store.all_rules().await?;
    state.registry.load_all(&records, &ctx(state));
    state.loaded.store(true, Ordering::Release);
    Ok(())
}

/// Tells every replica that rule `name` of `bus` changed (the notice is
/// `<bus>\n<rule>`; names cannot hold a line feed).
pub async fn announce(state: &State, bus: &str, name: &str) {
    let subject = state
        .bus
        .names()
        .subject(sluice_bus::subjects::CONTROL_RULES);
    let client = state.bus.client();
    if let Err(e) = client
        .publish(subject, format!("{bus}\n{name}").into())
        .await
    {
        tracing::warn!(error = %e, "cannot announce a rule change; other replicas catch up at their next reload");
    }
    let _ = client.flush().await;
}

/// Reloads a bus whenever a replica announces a change, and everything every
/// reload interval.
async fn follow_changes(state: Shared, shutdown: CancellationToken) {
    let subject = state
        .bus
        .names()
        .subject(sluice_bus::subjects::CONTROL_RULES);
    let mut notices = match state.bus.client().subscribe(subject).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow rule changes; relying on the periodic reload");
            None
        }
    };
    let mut tick = tokio::time::interval(state.config.reload_interval);
    tick.reset();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = reload_all(&state).await {
                    tracing::warn!(error = %e, "periodic reload failed");
                }
            }
            m = async {
                match notices.as_mut() {
                    Some(n) => n.next().await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(m) = m else { notices = None; continue };
                let notice = String::from_utf8_lossy(&m.payload).into_owned();
                match notice.split_once('\n') {
                    Some((bus, name))
                        if sluice_model::names::check_bus(bus).is_ok()
                            && sluice_model::names::check_rule(name).is_ok() =>
                    {
                        reload_rule(&state, bus, name).await;
                    }
                    None if sluice_model::names::check_bus(&notice).is_ok() => {
                        reload_bus(&state, &notice).await;
                    }
                    _ => tracing::debug!(%notice, "ignoring a malformed rule notice"),
                }
            }
        }
    }
}

/// Declares every stored queue again, so bounds changed by configuration
/// or by an upgrade apply to queues created before (a failure is logged;
/// the queue keeps its old bounds until it is put again).
async fn redeclare_queues(state: Shared) {
    use prost::Message as _;
    let records = match state.store.queues().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the queues to declare them again");
            return;
        }
    };
    for rec in records {
        let declared = match sluice_proto::v1::Queue::decode(rec.spec.as_slice())
            .map_err(|e| e.to_string())
            .and_then(|q| grpc::queues::check(&q).map_err(|v| v.to_string()))
        {
            Ok((_, settings)) => state
                .bus
                .declare_queue(
                    &rec.name,
                    settings,
                    state.config.queue_max_messages,
                    state.config.common.nats.replicas,
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = declared {
            tracing::warn!(queue = %rec.name, error = %e, "cannot declare the queue again");
        }
    }
}

/// Deliveries waiting and dead letters, as gauges.
async fn gauges(state: Shared, shutdown: CancellationToken) {
    loop {
        if let Ok(mut s) = state
            .bus
            .jetstream()
            .get_stream(state.bus.names().deliveries())
            .await
        {
            if let Ok(info) = s.info().await {
                metrics::gauge!("sluice.transformer.deliveries.waiting")
                    .set(info.state.messages as f64);
            }
        }
        if let Ok(lag) = state
            .bus
            .consumer_lag(&state.bus.names().bus(), &state.bus.names().router())
            .await
        {
            metrics::gauge!("sluice.transformer.router.lag").set(lag as f64);
        }
        if let Ok(depth) = state.bus.dlq_depth().await {
            metrics::gauge!("sluice.transformer.dlq.depth").set(depth as f64);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(state.config.gauge_interval) => {}
        }
    }
}

/// Connects, loads the rules, serves the admin endpoints on `listener` and
/// the gRPC API on its own address, routes and delivers until `shutdown`;
/// then lets in-flight work finish (up to the shutdown timeout).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let grpc_listener = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (SLUICE_TRANSFORMER_GRPC_LISTEN)",
                config.grpc_listen
            )
        })?;
    let Backends { bus, store } =
        Backends::connect("transformer", &config.common, Tables::Wait, &shutdown).await?;
    let policy = Arc::new(config.address_policy());
    let roots = match &config.targets_ca_file {
        Some(path) => sluice_outbound::http::read_roots(path)
            .map_err(anyhow::Error::msg)
            .context("SLUICE_TARGETS_CA_FILE")?,
        None => Vec::new(),
    };
    let http = sluice_outbound::http::client(
        policy.clone(),
        concat!("sluice-transformer/", env!("CARGO_PKG_VERSION")),
        roots,
    )
    .context("building the HTTP client")?;
    let workflows = match &config.orchestrator_url {
        Some(url) => Some(WorkflowsClient::new(
            tonic::transport::Endpoint::from_shared(url.clone())
                .context("SLUICE_ORCHESTRATOR_URL")?
                .connect_timeout(Duration::from_secs(5))
                .connect_lazy(),
        )),
        None => None,
    };
    let kafka_brokers = config.kafka_brokers.clone();
    let state: Shared = Arc::new(State {
        config,
        bus,
        store,
        registry: registry::Registry::new(),
        policy,
        http,
        oauth: deliver::oauth::Tokens::default(),
        kafka: deliver::kafka::Producer::new(kafka_brokers),
        workflows,
        presence: presence::Presence::new(),
        replays: replay::Running::new(),
        bells: deliver::Bells::default(),
        tracker: TaskTracker::new(),
        loaded: AtomicBool::new(false),
        reload_lock: tokio::sync::Mutex::new(()),
    });

    let admin = axum::serve(listener, app::app(state.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let admin = tokio::spawn(async move { admin.await });
    // Rules first: routing before they are loaded would drop matches.
    loop {
        match reload_all(&state).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the rules yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    let grpc = tokio::spawn(grpc::serve(state.clone(), grpc_listener, shutdown.clone()));
    let background = [
        tokio::spawn(redeclare_queues(state.clone())),
        tokio::spawn(follow_changes(state.clone(), shutdown.clone())),
        tokio::spawn(gauges(state.clone(), shutdown.clone())),
        tokio::spawn({
            let (state, stop) = (state.clone(), shutdown.clone());
            async move { state.presence.run(&state.bus, stop).await }
        }),
        tokio::spawn(deliver::run(state.clone(), shutdown.clone())),
        tokio::spawn(deliver::sweep(state.clone(), shutdown.clone())),
        tokio::spawn(scheduler::run(state.clone(), shutdown.clone())),
        tokio::spawn(replay::run(state.clone(), shutdown.clone())),
    ];
    tracing::info!(rules = state.registry.snapshot().rule_count(), "routing");
    let result = router::run(state.clone(), shutdown.clone()).await;
    shutdown.cancel();
    state.tracker.close();
    tracing::info!(
        in_flight = state.tracker.len(),
        "draining routings and deliveries"
    );
    if tokio::time::timeout(state.config.shutdown_timeout, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown timeout: unfinished deliveries will be retried after their ack wait"
        );
    }
    for task in background {
        let _ = task.await;
    }
    match grpc.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "gRPC server stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "gRPC server task failed"),
        Ok(Ok(())) => {}
    }
    let _ = admin.await;
    result
}
