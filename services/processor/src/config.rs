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
        Ok(Self {
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

impl sluice_runtime::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.common.telemetry
    }
    fn listen(&self) -> (SocketAddr, &'static str) {
        (self.listen, "SLUICE_PROCESSOR_LISTEN")
    }
}
