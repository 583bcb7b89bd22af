//! Logs, traces and metrics for every sluice service, set up one way.
//!
//! - Logs: JSON lines (or text) through `tracing`, each carrying the fields
//!   of the current span, so `trace_id` and `request_id` appear on every line
//!   logged while handling a request or a message.
//! - Traces: `tracing` spans become OpenTelemetry spans; exported over
//!   OTLP/HTTP when an endpoint is configured. Spans exist (and trace ids
//!   propagate) even without an exporter.
//! - Propagation: W3C `traceparent`/`tracestate` in HTTP headers and NATS
//!   message headers ([`http_context`], [`nats_inject`], [`nats_context`]).
//! - Metrics: a process-wide Prometheus recorder behind the `metrics` facade;
//!   [`metrics_handle`] renders the `/metrics` page.

#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, TracerProviderBuilder};
use opentelemetry_sdk::Resource;
use sluice_config::{LogFormat, TelemetryConfig};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Errors setting telemetry up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter does not parse.
    #[error("SLUICE_LOG: {0}")]
    Filter(String),
    /// The OTLP exporter could not be built.
    #[error("SLUICE_OTLP_ENDPOINT: {0}")]
    Exporter(String),
}

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes spans still buffered, waiting at most `timeout`.
    pub async fn shutdown(self, timeout: Duration) {
        if let Some(provider) = self.provider {
            let flush = tokio_blocking(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            });
            if tokio::time::timeout(timeout, flush).await.is_err() {
                eprintln!("telemetry: span flush timed out after {timeout:?}");
            }
        }
    }
}

async fn tokio_blocking(f: impl FnOnce() + Send + 'static) {
    let _ = tokio::task::spawn_blocking(f).await;
}

/// Adds to the tracer provider a service builds (the services running
/// Temporal workflows give it the SDK's replay-safe span id generator).
pub type ProviderHook = fn(TracerProviderBuilder) -> TracerProviderBuilder;

/// Installs logging, tracing and the metrics recorder for `service`.
/// Call once from `main`; a second call in one process keeps the first setup.
pub fn init(service: &str, config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    init_with(service, config, |b| b)
}

/// [`init`], with `hook` applied to the tracer provider. The provider and
/// the W3C trace-context propagator are also installed as OpenTelemetry's
/// globals, for libraries that trace through them (Temporal's SDK).
pub fn init_with(
    service: &str,
    config: &TelemetryConfig,
    hook: ProviderHook,
) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    let resource = Resource::builder()
        .with_service_name(format!("sluice-{service}"))
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_resource(resource);
    if let Some(endpoint) = &config.otlp_endpoint {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
        let endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(5))
            .with_headers(Default::default())
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = hook(builder).build();
    let tracer = provider.tracer(format!("sluice-{service}"));
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);

    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .flatten_event(true),
            )
            .try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
    if installed.is_err() {
        // Already set up in this process (tests, all-in-one): keep the first.
        return Ok(Telemetry { provider: None });
    }
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let _ = metrics_handle();
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// A cancellation token cancelled on SIGTERM or Ctrl-C: the one shutdown
/// signal every loop of a service selects on.
pub fn shutdown_on_signals() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        t.cancel();
    });
    token
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (a test harness): render our own, unused.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The trace id of `span`, or empty.
pub fn trace_id_of(span: &tracing::Span) -> String {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        sc.trace_id().to_string()
    } else {
        String::new()
    }
}

/// The W3C `traceresponse` value of `span` (Trace Context level 2):
/// `00-<trace id>-<span id>-<flags>`, naming the span the server made for
/// the request, so a caller can find the trace (paste the trace id into
/// Jaeger); `None` when the span has no valid context.
pub fn traceresponse(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Makes `span` a child of the remote context `parent` (if it carries a valid span).
pub fn set_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        // Fails only when the span is already closed: nothing to parent then.
        let _ = span.set_parent(parent);
    }
}

/// The remote context carried by HTTP request headers.
pub fn http_context(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HttpHeaders(headers))
}

/// `f`, run with the current span's context as OpenTelemetry's current
/// context: for libraries that take their parent from OpenTelemetry rather
/// than from `tracing` (Temporal's client starting a workflow).
pub fn in_current_span<F: std::future::Future>(f: F) -> opentelemetry::context::WithContext<F> {
    use opentelemetry::context::FutureExt as _;
    f.with_context(tracing::Span::current().context())
}

/// Writes the current span's context into NATS message headers.
pub fn nats_inject(headers: &mut async_nats::HeaderMap) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut NatsHeadersMut(headers));
}

/// Writes the current span's context through `set(name, value)`: for maps
/// this crate does not know (gRPC metadata, an HTTP client's headers).
pub fn inject_current(set: impl FnMut(&str, String)) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut FnInjector(set));
}

/// The current span's W3C `traceparent`, to keep beside a record whose
/// later processing should continue this trace ([`traceparent_context`]).
pub fn current_traceparent() -> Option<String> {
    let mut found = None;
    inject_current(|k, v| {
        if k == "traceparent" {
            found = Some(v);
        }
    });
    found
}

/// The remote context a stored `traceparent` names (empty if it names none).
pub fn traceparent_context(traceparent: &str) -> Context {
    TraceContextPropagator::new().extract(&OneHeader(traceparent))
}

struct OneHeader<'a>(&'a str);
impl Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Writes the current span's context into HTTP headers.
pub fn http_inject(headers: &mut http::HeaderMap) {
    inject_current(|k, v| {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            headers.insert(name, value);
        }
    });
}

struct FnInjector<F>(F);
impl<F: FnMut(&str, String)> Injector for FnInjector<F> {
    fn set(&mut self, key: &str, value: String) {
        (self.0)(key, value);
    }
}

/// The remote context carried by NATS message headers.
pub fn nats_context(headers: Option<&async_nats::HeaderMap>) -> Context {
    match headers {
        Some(h) => TraceContextPropagator::new().extract(&NatsHeaders(h)),
        None => Context::new(),
    }
}

struct HttpHeaders<'a>(&'a http::HeaderMap);
impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct NatsHeaders<'a>(&'a async_nats::HeaderMap);
impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

struct NatsHeadersMut<'a>(&'a mut async_nats::HeaderMap);
impl Injector for NatsHeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        self.0.insert(key, value.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_through_nats_headers() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let cx = nats_context(Some(&headers));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn a_stored_traceparent_names_its_span_and_garbage_names_none() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = traceparent_context(tp).span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(!traceparent_context("not one")
            .span()
            .span_context()
            .is_valid());
    }

    #[test]
    fn http_headers_without_traceparent_give_an_empty_context() {
        let cx = http_context(&http::HeaderMap::new());
        assert!(!cx.span().span_context().is_valid());
    }
}
