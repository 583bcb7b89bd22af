//! The orchestrator: sluice's Step Functions, on Temporal. It is a
//! Temporal worker running sluice's workflows and their activities, and
//! serves the `Workflows` gRPC API (the gateway's `/v1/workflows`, the
//! transformer's `workflow` targets) that starts, describes, signals,
//! cancels and lists them. Temporal keeps every workflow's history, so a
//! workflow survives any worker crash: another worker (or this one,
//! restarted) replays it and carries on.
//!
//! - `approval`: the tasks app's approval workflow and its activities.
//! - `files`: the file pipeline (its activities run in file-ingest).
//! - `saga`: the order saga and its activities.
//! - `grpc`: the `Workflows` API.
//! - `links`: signed approval links.
//! - `app`: the admin endpoints.

#![forbid(unsafe_code)]

pub mod app;
pub mod approval;
pub mod config;
pub mod files;
pub mod grpc;
pub mod links;
pub mod saga;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sluice_bus::Bus;
use sluice_runtime::{Backends, Tables};
use sluice_store::Store;
use temporalio_sdk::{Worker, WorkerOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub use sluice_files::temporal::Temporal;

/// A replayer of every workflow this orchestrator runs: recorded
/// histories replayed through it must take the same path (determinism
/// tests).
pub fn replayer() -> anyhow::Result<temporalio_sdk::workflow_replayer::WorkflowReplayer> {
    use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
    let options = WorkflowReplayerOptions::new()
        .register_workflow::<approval::Approval>()
        .map_err(|e| anyhow::anyhow!("registering the workflows: {e}"))?
        .register_workflow::<files::FilePipeline>()
        .map_err(|e| anyhow::anyhow!("registering the workflows: {e}"))?
        .register_workflow::<saga::OrderSaga>()
        .map_err(|e| anyhow::anyhow!("registering the workflows: {e}"))?
        .build();
    WorkflowReplayer::new(options).map_err(|e| anyhow::anyhow!("a replayer: {e}"))
}

/// State shared by the API and the admin endpoints.
#[derive(Debug)]
pub struct State {
    /// Configuration.
    pub config: Config,
    /// JetStream.
    pub bus: Bus,
    /// The store.
    pub store: Store,
    /// Temporal.
    pub temporal: Temporal,
    /// Approval link signing.
    pub links: links::Links,
}

/// Shared handle on [`State`].
pub type Shared = Arc<State>;

/// Connects, runs the worker and serves the admin endpoints on `listener`
/// and the gRPC API on its own address until `shutdown`; then lets the
/// running activities finish (up to `SLUICE_ORCHESTRATOR_SHUTDOWN_TIMEOUT`).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let grpc_listener = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (SLUICE_ORCHESTRATOR_GRPC_LISTEN)",
                config.grpc_listen
            )
        })?;
    let Backends { bus, store } =
        Backends::connect("orchestrator", &config.common, Tables::Wait, &shutdown).await?;
    let Some(temporal) = Temporal::connect_retrying(
        &config.temporal_url,
        &config.namespace,
        "orchestrator",
        &shutdown,
    )
    .await
    else {
        return Ok(());
    };
    if config.link_secret.is_none() {
        tracing::warn!(
            "SLUICE_LINK_SECRET is not set: approval links are signed with a key of this process and stop working when it restarts"
        );
    }
    let links = links::Links::new(config.link_secret.as_deref(), &config.public_url);
    let state: Shared = Arc::new(State {
        links: links.clone(),
        temporal: temporal.clone(),
        config,
        bus: bus.clone(),
        store: store.clone(),
    });

    let activities = approval::ApprovalActivities {
        bus,
        store,
        origin: sluice_runtime::tasks::Origin {
            account: state.config.account.clone(),
            region: state.config.region.clone(),
            ttl: time::Duration::try_from(state.config.tasks_ttl).unwrap_or(time::Duration::DAY),
        },
        links,
        topic: state.config.approval_topic.clone(),
    };
    let order_activities = saga::OrderActivities {
        store: state.store.clone(),
        bus: state.bus.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .context("the payment provider's client")?,
        payment_url: state.config.payment_url.clone(),
        fraud_max_total_minor: state.config.fraud_max_total_minor,
        fraud_customers: state.config.fraud_customers.clone(),
    };
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default())
        .map_err(|e| anyhow::anyhow!("the Temporal worker runtime: {e}"))?;
    let options = WorkerOptions::new(state.config.task_queue.clone())
        .graceful_shutdown_period(state.config.shutdown_timeout)
        .register_workflow::<approval::Approval>()
        .map_err(|e| anyhow::anyhow!("registering the workflows: {e}"))?
        .register_workflow::<files::FilePipeline>()
        .map_err(|e| anyhow::anyhow!("registering the workflows: {e}"))?
        .register_workflow::<saga::OrderSaga>()
        .map_err(|e| anyhow::anyhow!("registering the workflows: {e}"))?
        .register_activities(activities)
        .register_activities(order_activities)
        .build();
    let mut worker = Worker::new(&runtime, temporal.client.clone(), options)
        .map_err(|e| anyhow::anyhow!("the Temporal worker: {e}"))?;
    let stop_worker = worker.shutdown_handle();

    let admin = axum::serve(listener, app::app(state.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let admin = tokio::spawn(async move { admin.await });
    let grpc = tokio::spawn(grpc::serve(state.clone(), grpc_listener, shutdown.clone()));
    tracing::info!(task_queue = %state.config.task_queue, "running workflows");
    // The worker's future is not Send (workflows run on a local set), so
    // it runs here rather than on a spawned task.
    let worked = {
        let run = worker.run();
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => r,
            _ = shutdown.cancelled() => {
                stop_worker();
                run.await
            }
        }
    };
    shutdown.cancel();
    let served = grpc.await;
    let _ = admin.await;
    worked.map_err(|e| anyhow::anyhow!("the Temporal worker stopped: {e}"))?;
    served.context("the Workflows API")??;
    Ok(())
}
