//! The orchestrator's configuration, from `SLUICE_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use sluice_config::{serialize_duration, ConfigError, Env};
use sluice_runtime::Common;

/// Everything the orchestrator reads at start.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `SLUICE_ORCHESTRATOR_LISTEN`: admin endpoints. Default 127.0.0.1:8084.
    pub listen: SocketAddr,
    /// `SLUICE_ORCHESTRATOR_GRPC_LISTEN`: the Workflows API. Default 127.0.0.1:9084.
    pub grpc_listen: SocketAddr,
    /// `SLUICE_TEMPORAL_URL`: Temporal's frontend. Default http://127.0.0.1:7233.
    pub temporal_url: String,
    /// `SLUICE_TEMPORAL_NAMESPACE`: default `default`.
    pub namespace: String,
    /// `SLUICE_TEMPORAL_TASK_QUEUE`: where sluice's workflows and
    /// activities are polled. Default `sluice`.
    pub task_queue: String,
    /// `SLUICE_PUBLIC_URL`: where the gateway is reached from outside
    /// (approval links). Default http://127.0.0.1:8080.
    pub public_url: String,
    /// `SLUICE_LINK_SECRET`: the key approval links are signed with (at
    /// least 32 characters). Unset: a random key per process, so links
    /// stop working when the orchestrator restarts (said at start).
    #[serde(skip)]
    pub link_secret: Option<String>,
    /// `SLUICE_APPROVAL_APPROVERS`: who approves high-priority tasks, in
    /// escalation order (comma-separated email addresses). Default
    /// `approver@example.com,escalation@example.com`.
    pub approvers: Vec<String>,
    /// `SLUICE_APPROVAL_TIMEOUT`: how long each approver has before the
    /// next is asked (and after the last, the task is rejected). Default 24h.
    #[serde(serialize_with = "serialize_duration")]
    pub approval_timeout: Duration,
    /// `SLUICE_APPROVAL_TOPIC`: the notifier topic approval requests are
    /// published to (its email subscriptions, filtered on the `approver`
    /// attribute, reach the approvers). Default `task-approvals`.
    pub approval_topic: String,
    /// `SLUICE_TASKS_TTL`: as the gateway's (a rejected task expires
    /// after it). Default 30d.
    #[serde(serialize_with = "serialize_duration")]
    pub tasks_ttl: Duration,
    /// `SLUICE_ACCOUNT` / `SLUICE_REGION`: in task events.
    pub account: String,
    /// See `account`.
    pub region: String,
    /// `SLUICE_ORCHESTRATOR_SHUTDOWN_TIMEOUT`: how long running activities
    /// get to finish at shutdown. Default 20s.
    #[serde(serialize_with = "serialize_duration")]
    pub shutdown_timeout: Duration,
    /// `SLUICE_PAYMENT_URL`: the payment provider the order saga charges
    /// (`POST /charges`, `POST /refunds`). Default http://127.0.0.1:8090.
    pub payment_url: String,
    /// `SLUICE_PAYMENT_ATTEMPTS`: attempts at a charge before the order is
    /// rejected. Default 3.
    pub payment_attempts: u32,
    /// `SLUICE_FRAUD_MAX_TOTAL`: an order whose total (in minor units, e.g.
    /// cents) is above it fails the saga's fraud check. Default 1000000.
    pub fraud_max_total_minor: i64,
    /// `SLUICE_FRAUD_BLOCKED_CUSTOMERS`: customers whose orders fail the
    /// fraud check (comma-separated). Default none.
    pub fraud_customers: Vec<String>,
    /// The file pipeline's settings (its activities' task queue, attempts
    /// and backoff).
    pub files: sluice_files::FilesConfig,
    /// NATS, the store, queue limits and telemetry.
    #[serde(flatten)]
    pub common: Common,
}

impl Config {
    /// Reads the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let temporal_url = env.string("SLUICE_TEMPORAL_URL", "http://127.0.0.1:7233");
        if url::Url::parse(&temporal_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .is_none()
        {
            return Err(ConfigError::new(
                "SLUICE_TEMPORAL_URL",
                format!("expected http://host:port or https://host:port, got {temporal_url:?}"),
            ));
        }
        let public_url = env.string("SLUICE_PUBLIC_URL", "http://127.0.0.1:8080");
        if url::Url::parse(&public_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .is_none()
        {
            return Err(ConfigError::new(
                "SLUICE_PUBLIC_URL",
                format!("expected an http:// or https:// URL, got {public_url:?}"),
            ));
        }
        let payment_url = env.string("SLUICE_PAYMENT_URL", "http://127.0.0.1:8090");
        if url::Url::parse(&payment_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .is_none()
        {
            return Err(ConfigError::new(
                "SLUICE_PAYMENT_URL",
                "must be an http:// or https:// URL",
            ));
        }
        let link_secret = env.opt_string("SLUICE_LINK_SECRET");
        if link_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(ConfigError::new(
                "SLUICE_LINK_SECRET",
                "must be at least 32 characters",
            ));
        }
        let approvers: Vec<String> = env
            .string(
                "SLUICE_APPROVAL_APPROVERS",
                "approver@example.com,escalation@example.com",
            )
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        if approvers.is_empty() || approvers.iter().any(|a| !a.contains('@')) {
            return Err(ConfigError::new(
                "SLUICE_APPROVAL_APPROVERS",
                "expected one or more comma-separated email addresses",
            ));
        }
        let approval_timeout =
            env.duration("SLUICE_APPROVAL_TIMEOUT", Duration::from_secs(86_400))?;
        if approval_timeout < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "SLUICE_APPROVAL_TIMEOUT",
                "must be at least 1s",
            ));
        }
        let approval_topic = env.string("SLUICE_APPROVAL_TOPIC", "task-approvals");
        sluice_model::names::check_topic(&approval_topic)
            .map_err(|e| ConfigError::new("SLUICE_APPROVAL_TOPIC", e))?;
        if sluice_model::names::is_fifo_topic(&approval_topic) {
            return Err(ConfigError::new(
                "SLUICE_APPROVAL_TOPIC",
                "must be a standard topic (FIFO topics deliver only to queues)",
            ));
        }
        Ok(Self {
            listen: env.parse(
                "SLUICE_ORCHESTRATOR_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 8084)),
            )?,
            grpc_listen: env.parse(
                "SLUICE_ORCHESTRATOR_GRPC_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 9084)),
            )?,
            temporal_url,
            namespace: env.string("SLUICE_TEMPORAL_NAMESPACE", "default"),
            task_queue: env.string("SLUICE_TEMPORAL_TASK_QUEUE", "sluice"),
            public_url: public_url.trim_end_matches('/').to_string(),
            link_secret,
            approvers,
            approval_timeout,
            approval_topic,
            tasks_ttl: env.duration("SLUICE_TASKS_TTL", Duration::from_secs(30 * 86_400))?,
            account: env.string("SLUICE_ACCOUNT", "000000000000"),
            region: env.string("SLUICE_REGION", "local"),
            shutdown_timeout: env.duration(
                "SLUICE_ORCHESTRATOR_SHUTDOWN_TIMEOUT",
                Duration::from_secs(20),
            )?,
            payment_url: payment_url.trim_end_matches('/').to_string(),
            payment_attempts: env.number("SLUICE_PAYMENT_ATTEMPTS", 3, 1..=100)?,
            fraud_max_total_minor: env.number("SLUICE_FRAUD_MAX_TOTAL", 1_000_000, 0..=i64::MAX)?,
            fraud_customers: env
                .string("SLUICE_FRAUD_BLOCKED_CUSTOMERS", "")
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            files: sluice_files::FilesConfig::from_env(env)?,
            common: Common::from_env(env)?,
        })
    }
}

impl sluice_runtime::ServiceConfig for Config {
    fn telemetry(&self) -> &sluice_config::TelemetryConfig {
        &self.common.telemetry
    }
    fn listen(&self) -> (SocketAddr, &'static str) {
        (self.listen, "SLUICE_ORCHESTRATOR_LISTEN")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::from_pairs(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_work_for_make_up() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert_eq!(c.temporal_url, "http://127.0.0.1:7233");
        assert_eq!(c.task_queue, "sluice");
        assert_eq!(c.approvers.len(), 2);
        assert_eq!(c.approval_timeout, Duration::from_secs(86_400));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("SLUICE_TEMPORAL_URL", "localhost:7233"),
            ("SLUICE_LINK_SECRET", "short"),
            ("SLUICE_APPROVAL_APPROVERS", "nobody"),
            ("SLUICE_APPROVAL_TIMEOUT", "0s"),
            ("SLUICE_APPROVAL_TOPIC", "a.fifo"),
        ] {
            let e = Config::from_env(&env(&[(var, value)])).unwrap_err();
            assert!(e.to_string().contains(var), "{var}: {e}");
        }
    }
}
