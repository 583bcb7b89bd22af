//! file-ingest: sluice's S3 triggers. The object store publishes an
//! S3-format event notification to JetStream (`files.<bucket>`) for every
//! object created; file-ingest takes each one (a work queue, so none is
//! lost while it is down), records the file when nobody registered it,
//! and starts its pipeline workflow through the orchestrator, with a
//! workflow id derived from the object's version, so a notification
//! delivered twice starts one pipeline. It is also the Temporal activity
//! worker of the pipeline's steps (validate, transform, store, notify,
//! dead-letter): the streaming work happens here, beside the object
//! store, and scales with this service.
//!
//! - `ingest`: the notifications.
//! - `buckets`: creating the buckets and their notification settings.
//! - `app`: the admin endpoints.

#![forbid(unsafe_code)]

pub mod app;
pub mod buckets;
pub mod config;
pub mod ingest;

use std::sync::Arc;

use anyhow::Context as _;
use sluice_bus::Bus;
use sluice_files::activities::FileActivities;
use sluice_files::temporal::Temporal;
use sluice_proto::v1::workflows_client::WorkflowsClient;
use sluice_runtime::{Backends, Tables};
use sluice_store::Store;
use temporalio_sdk::{Worker, WorkerOptions};
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
    /// The object store.
    pub s3: aws_sdk_s3::Client,
    /// Temporal (readiness).
    pub temporal: Temporal,
    /// The orchestrator's Workflows API.
    pub workflows: WorkflowsClient<tonic::transport::Channel>,
}

/// Shared handle on [`State`].
pub type Shared = Arc<State>;

/// Connects, sets up the buckets, then consumes notifications, runs the
/// activity worker and serves the admin endpoints on `listener` until
/// `shutdown`; then lets running activities finish (up to
/// `SLUICE_FILE_INGEST_SHUTDOWN_TIMEOUT`).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Backends { bus, store } =
        Backends::connect("file-ingest", &config.common, Tables::Wait, &shutdown).await?;
    let Some(temporal) = Temporal::connect_retrying(
        &config.temporal_url,
        &config.namespace,
        "file-ingest",
        &shutdown,
    )
    .await
    else {
        return Ok(());
    };
    let workflows = WorkflowsClient::new(
        tonic::transport::Endpoint::from_shared(config.orchestrator_url.clone())
            .context("SLUICE_ORCHESTRATOR_URL")?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_lazy(),
    );
    let state: Shared = Arc::new(State {
        s3: config.files.client(),
        temporal: temporal.clone(),
        workflows,
        bus: bus.clone(),
        store: store.clone(),
        config,
    });

    let admin = axum::serve(listener, app::app(state.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let admin = tokio::spawn(async move { admin.await });
    // Notifications wait in JetStream until the buckets are set up.
    let consumer = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if buckets::ensure_retrying(&state, &shutdown).await {
                ingest::run(state, shutdown).await;
            }
        })
    };

    let activities = FileActivities {
        s3: state.s3.clone(),
        store,
        bus,
        config: state.config.files.clone(),
    };
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default())
        .map_err(|e| anyhow::anyhow!("the Temporal worker runtime: {e}"))?;
    use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(state.config.activities))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let options = WorkerOptions::new(state.config.files.task_queue.clone())
        .graceful_shutdown_period(state.config.shutdown_timeout)
        .tuner(tuner)
        .register_activities(activities)
        .build();
    let mut worker = Worker::new(&runtime, temporal.client.clone(), options)
        .map_err(|e| anyhow::anyhow!("the Temporal worker: {e}"))?;
    let stop_worker = worker.shutdown_handle();
    tracing::info!(task_queue = %state.config.files.task_queue,
        bucket = %state.config.files.bucket, "running file activities");
    // The worker's future is not Send, so it runs here.
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
    let _ = consumer.await;
    let _ = admin.await;
    worked.map_err(|e| anyhow::anyhow!("the Temporal activity worker stopped: {e}"))?;
    Ok(())
}
