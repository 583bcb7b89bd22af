//! The notifier's configuration, from `SLUICE_*` variables.

use std::net::SocketAddr;

use serde::Serialize;
use sluice_config::{ConfigError, Env, TelemetryConfig};
use sluice_runtime::Common;

/// Everything the notifier reads at start.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `SLUICE_NOTIFIER_LISTEN`: address of `/healthz`, `/readyz` and `/metrics`. Default `127.0.0.1:8083`.
    pub listen: SocketAddr,
    /// `SLUICE_NOTIFIER_GRPC_LISTEN`: the gRPC API (Topics, health). Default `127.0.0.1:9083`.
    pub grpc_listen: SocketAddr,
    /// `SLUICE_NOTIFIER_MAX_TOPICS`: topics allowed. Default 1000.
    pub max_topics: usize,
    /// `SLUICE_NOTIFIER_MAX_SUBSCRIPTIONS`: subscriptions per topic. Default 100.
    pub max_subscriptions: usize,
    /// `SLUICE_ACCOUNT`: account in topic ARNs. Default `000000000000`.
    pub account: String,
    /// `SLUICE_REGION`: region in topic ARNs. Default `local`.
    pub region: String,
    /// `SLUICE_NOTIFIER_SHUTDOWN_TIMEOUT`: how long fan-outs in flight may
    /// take after SIGTERM. Default 25s.
    #[serde(serialize_with = "sluice_config::serialize_duration")]
    pub shutdown_timeout: std::time::Duration,
    /// NATS, the store, queue limits and telemetry.
    #[serde(flatten)]
    pub common: Common,
}

impl Config {
    /// Reads the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: env.parse(
                "SLUICE_NOTIFIER_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 8083)),
            )?,
            grpc_listen: env.parse(
                "SLUICE_NOTIFIER_GRPC_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 9083)),
            )?,
            max_topics: env.number("SLUICE_NOTIFIER_MAX_TOPICS", 1000, 1..=100_000)?,
            max_subscriptions: env.number(
                "SLUICE_NOTIFIER_MAX_SUBSCRIPTIONS",
                100,
                1..=12_500_000,
            )?,
            account: env.string("SLUICE_ACCOUNT", "000000000000"),
            region: env.string("SLUICE_REGION", "local"),
            shutdown_timeout: env.duration(
                "SLUICE_NOTIFIER_SHUTDOWN_TIMEOUT",
                std::time::Duration::from_secs(25),
            )?,
            common: Common::from_env(env)?,
        })
    }
}

impl Config {
    /// A topic's ARN-like name, as notifications carry it.
    pub fn topic_arn(&self, topic: &str) -> String {
        format!("arn:sluice:sns:{}:{}:{topic}", self.region, self.account)
    }
}

impl sluice_runtime::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.common.telemetry
    }
    fn listen(&self) -> (SocketAddr, &'static str) {
        (self.listen, "SLUICE_NOTIFIER_LISTEN")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_for_make_up() {
        let c = Config::from_env(&Env::default()).unwrap();
        assert_eq!(c.listen.port(), 8083);
        assert_eq!(c.grpc_listen.port(), 9083);
        assert_eq!(c.max_topics, 1000);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("SLUICE_NOTIFIER_MAX_TOPICS", "0"),
            ("SLUICE_NOTIFIER_GRPC_LISTEN", "nowhere"),
        ] {
            let err = Config::from_env(&Env::default().with(var, value)).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
    }
}
