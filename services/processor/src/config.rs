//! The processor's configuration, from `SLUICE_*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use sluice_config::{serialize_duration, ConfigError, Env, TelemetryConfig};
use sluice_runtime::Common;

/// Everything the processor reads at start.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `SLUICE_PROCESSOR_LISTEN`: address of `/healthz`, `/readyz` and `/metrics`. Default `127.0.0.1:8081`.
    pub listen: SocketAddr,
    /// `SLUICE_ORDER_FLOW`: `direct` (the processor reserves the stock and
    /// settles the order) or `saga` (it starts the orchestrator's
    /// `order-saga` workflow, which reserves, checks for fraud, charges the
    /// payment and confirms, compensating on failure). Default `direct`.
    pub order_flow: OrderFlow,
    /// `SLUICE_ORCHESTRATOR_URL`: the orchestrator's Workflows API, for
    /// `SLUICE_ORDER_FLOW=saga`. Default http://127.0.0.1:9084.
    pub orchestrator_url: String,
    /// `SLUICE_PROCESSOR_CONCURRENCY`: messages processed at once. Default 64: enough
    /// to keep a store busy over the network without flooding it.
    pub concurrency: usize,
    /// `SLUICE_PROCESSOR_BATCH`: messages pulled per request. Default 64 (one per slot).
    pub batch: usize,
    /// `SLUICE_PROCESSOR_SHUTDOWN_TIMEOUT`: how long in-flight messages may take
    /// to finish after SIGTERM. Default 25s (under Kubernetes' 30s grace).
    #[serde(serialize_with = "serialize_duration")]
    pub shutdown_timeout: Duration,
    /// `SLUICE_PROCESSOR_GAUGE_INTERVAL`: how often queue lag and DLQ depth are read. Default 5s.
    #[serde(serialize_with = "serialize_duration")]
    pub gauge_interval: Duration,
    /// `SLUICE_OUTBOX_GRACE`: how long a task's events may wait in its
    /// outbox for their writer before the relay publishes them. Default 10s.
    #[serde(serialize_with = "serialize_duration")]
    pub outbox_grace: Duration,
    /// `SLUICE_OUTBOX_INTERVAL`: how often the relay looks. Default 2s.
    #[serde(serialize_with = "serialize_duration")]
    pub outbox_interval: Duration,
    /// NATS, the store, queue limits and telemetry.
    #[serde(flatten)]
    pub common: Common,
}

impl Config {
    /// Reads the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let order_flow = match env.string("SLUICE_ORDER_FLOW", "direct").as_str() {
            "direct" => OrderFlow::Direct,
            "saga" => OrderFlow::Saga,
            _ => {
                return Err(ConfigError::new(
                    "SLUICE_ORDER_FLOW",
                    "must be direct or saga",
                ))
            }
        };
        let orchestrator_url = env.string("SLUICE_ORCHESTRATOR_URL", "http://127.0.0.1:9084");
        if !(orchestrator_url.starts_with("http://") || orchestrator_url.starts_with("https://")) {
            return Err(ConfigError::new(
                "SLUICE_ORCHESTRATOR_URL",
                "must be an http:// or https:// URL",
            ));
        }
        Ok(Self {
            order_flow,
            orchestrator_url,
            listen: env.parse(
                "SLUICE_PROCESSOR_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 8081)),
            )?,
            concurrency: env.number("SLUICE_PROCESSOR_CONCURRENCY", 64, 1..=4096)?,
            batch: env.number("SLUICE_PROCESSOR_BATCH", 64, 1..=1024)?,
            shutdown_timeout: env
                .duration("SLUICE_PROCESSOR_SHUTDOWN_TIMEOUT", Duration::from_secs(25))?,
            gauge_interval: env
                .duration("SLUICE_PROCESSOR_GAUGE_INTERVAL", Duration::from_secs(5))?,
            outbox_grace: env.duration("SLUICE_OUTBOX_GRACE", Duration::from_secs(10))?,
            outbox_interval: env.duration("SLUICE_OUTBOX_INTERVAL", Duration::from_secs(2))?,
            common: Common::from_env(env)?,
        })
    }
}

/// How orders are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderFlow {
    /// By the processor.
    Direct,
    /// By the orchestrator's order saga.
    Saga,
}

impl sluice_runtime::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.common.telemetry
    }
    fn listen(&self) -> (SocketAddr, &'static str) {
        (self.listen, "SLUICE_PROCESSOR_LISTEN")
    }
}
