//! Temporal, as the orchestrator and file-ingest reach it.
//!
//! The client carries Temporal's OpenTelemetry plugin, so a trace goes on
//! through Temporal: a workflow start is a span, the trace context travels
//! in the workflow's and each activity's `_tracer-data` header, and the
//! worker (built from this client) makes a span for each workflow run and
//! activity execution, children of the caller. The plugin traces through
//! OpenTelemetry's global tracer provider and propagator, which
//! `sluice_telemetry::init` installs; a process running workflows gives
//! that provider [`trace_ids`], so a workflow's span ids come out the same
//! when Temporal replays it and its activities never name a parent that
//! was not exported.

use anyhow::Context as _;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use temporalio_sdk::interceptors::{
    ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next,
};
use tracing::Instrument as _;

/// The tracer provider of a process running Temporal workflows: span ids
/// drawn from the workflow's deterministic randomness inside a workflow,
/// random elsewhere (`sluice_runtime::main_with`).
pub fn trace_ids(
    builder: opentelemetry_sdk::trace::TracerProviderBuilder,
) -> opentelemetry_sdk::trace::TracerProviderBuilder {
    builder.with_id_generator(temporalio_sdk::opentelemetry::WorkflowIdGenerator::default())
}

/// Runs every activity in a `tracing` span that is a child of the
/// plugin's RunActivity span, so what the activity logs carries the trace
/// id and what it sends (NATS messages, gRPC calls) continues the trace.
struct ActivitySpans;

impl ActivityInboundInterceptor for ActivitySpans {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        let info = input.activity_info();
        let span = tracing::info_span!(
            "activity",
            activity = %info.activity_type,
            workflow_id = info.workflow_id.as_deref().unwrap_or_default(),
            trace_id = tracing::field::Empty,
        );
        Box::pin(async move {
            // OpenTelemetry's current context is the RunActivity span only
            // while the plugin's future polls this one.
            sluice_telemetry::set_parent(&span, opentelemetry::Context::current());
            span.record("trace_id", sluice_telemetry::trace_id_of(&span));
            next.run(input).instrument(span).await
        })
    }
}

/// A connected client (namespace set).
#[derive(Clone)]
pub struct Temporal {
    /// The client.
    pub client: Client,
    namespace: String,
}

impl std::fmt::Debug for Temporal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Temporal")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Temporal {
    /// Connects once (the caller retries); `service` names the worker.
    pub async fn connect(url: &str, namespace: &str, service: &str) -> anyhow::Result<Self> {
        let url = Url::parse(url).context("SLUICE_TEMPORAL_URL")?;
        let connection = Connection::connect(
            ConnectionOptions::new(url)
                .identity(format!("sluice-{service}@{}", std::process::id()))
                .build(),
        )
        .await
        .context("connecting to Temporal")?;
        // In this order: an activity's span (ours) is made inside the
        // plugin's RunActivity span.
        let options = ClientOptions::new(namespace.to_string())
            .plugin(temporalio_sdk::opentelemetry::OpenTelemetryPlugin::builder().build())
            .plugin(
                temporalio_sdk::SimplePlugin::builder("sluice-activity-spans")
                    .activity_inbound_interceptors(vec![std::sync::Arc::new(ActivitySpans)
                        as std::sync::Arc<dyn ActivityInboundInterceptor>])
                    .build(),
            )
            .build();
        let client = Client::new(connection, options).context("a Temporal client")?;
        Ok(Self {
            client,
            namespace: namespace.to_string(),
        })
    }

    /// [`Temporal::connect`], retried every second until it succeeds or
    /// `stop` fires (`None`).
    pub async fn connect_retrying(
        url: &str,
        namespace: &str,
        service: &str,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Option<Self> {
        loop {
            match Self::connect(url, namespace, service).await {
                Ok(t) => return Some(t),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), %url, "Temporal does not answer yet; will retry");
                    tokio::select! {
                        _ = stop.cancelled() => return None,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// Whether Temporal answers for the namespace.
    pub async fn describe_namespace(&self) -> Result<(), String> {
        self.client
            .count_workflows("", Default::default())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
