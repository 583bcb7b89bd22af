//! The transformer's configuration, from `SLUICE_*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use sluice_config::{serialize_duration, ConfigError, Env, TelemetryConfig};
use sluice_runtime::Common;

use crate::address;

/// Everything the transformer reads at start.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `SLUICE_TRANSFORMER_LISTEN`: address of `/healthz`, `/readyz` and `/metrics`. Default `127.0.0.1:8082`.
    pub listen: SocketAddr,
    /// `SLUICE_TRANSFORMER_GRPC_LISTEN`: the gRPC admin API (EventBus, Queues,
    /// health). Default `127.0.0.1:9082`.
    pub grpc_listen: SocketAddr,
    /// `SLUICE_ACCOUNT`: account in rule identifiers. Default `000000000000`.
    pub account: String,
    /// `SLUICE_REGION`: region in rule identifiers. Default `local`.
    pub region: String,
    /// `SLUICE_TRANSFORMER_ROUTER_CONCURRENCY`: bus events routed at once.
    /// Default 256: routing waits on JetStream acks, not on the CPU.
    pub router_concurrency: usize,
    /// `SLUICE_TRANSFORMER_ROUTER_ACK_WAIT`: how long a bus event being
    /// routed may take before another replica routes it again. Default 30s.
    #[serde(serialize_with = "serialize_duration")]
    pub router_ack_wait: Duration,
    /// `SLUICE_TRANSFORMER_RELOAD_INTERVAL`: every replica re-reads every
    /// rule this often, besides reloading a bus at once when told it
    /// changed (a missed notice heals within this). Default 30s.
    #[serde(serialize_with = "serialize_duration")]
    pub reload_interval: Duration,
    /// `SLUICE_TRANSFORMER_MAX_BUSES`: custom buses allowed. Default 100 (EventBridge's quota).
    pub max_buses: usize,
    /// `SLUICE_TRANSFORMER_MAX_RULES_PER_BUS`: rules per bus. Default 300 (EventBridge's quota).
    pub max_rules_per_bus: usize,
    /// `SLUICE_TRANSFORMER_MAX_QUEUES`: sluice queues allowed. Default 1000.
    pub max_queues: usize,
    /// `SLUICE_TRANSFORMER_QUEUE_MAX_MESSAGES`: messages one queue may hold;
    /// past it a send is refused (429) until receivers catch up. Default 1000000.
    pub queue_max_messages: u64,
    /// `SLUICE_TRANSFORMER_TARGET_CONCURRENCY`: deliveries in flight per
    /// target when the target sets no `max_concurrency`. Default 16.
    pub default_concurrency: u32,
    /// `SLUICE_TRANSFORMER_TARGET_MAX_PENDING`: deliveries one target may
    /// hold at once, in flight or waiting for a retry, across replicas.
    /// Default 1000.
    pub target_max_pending: u32,
    /// `SLUICE_TRANSFORMER_RETRY_BASE`: first retry delay; it doubles per
    /// attempt, with jitter. Default 1s.
    #[serde(serialize_with = "serialize_duration")]
    pub retry_base: Duration,
    /// `SLUICE_TRANSFORMER_RETRY_MAX_DELAY`: longest retry delay. Default 5m.
    #[serde(serialize_with = "serialize_duration")]
    pub retry_max_delay: Duration,
    /// `SLUICE_TARGETS_DENY`: extra addresses HTTP targets may not reach
    /// (networks, `addr:port`, `host[:port]`), besides the defaults and the
    /// transformer's own addresses.
    #[serde(skip)]
    pub targets_deny: Vec<address::Entry>,
    /// `SLUICE_TARGETS_ALLOW`: addresses allowed even if denied.
    #[serde(skip)]
    pub targets_allow: Vec<address::Entry>,
    /// `SLUICE_TARGETS_CA_FILE`: PEM certificates that HTTPS targets and
    /// webhooks trust besides the system's roots (a private CA).
    pub targets_ca_file: Option<String>,
    /// `SLUICE_ORCHESTRATOR_URL`: the orchestrator's gRPC address, for
    /// `workflow` targets. Unset: their deliveries fail and are retried.
    pub orchestrator_url: Option<String>,
    /// `SLUICE_GRPC_TIMEOUT`: deadline of calls to other services. Default 5s.
    #[serde(serialize_with = "serialize_duration")]
    pub grpc_timeout: Duration,
    /// `SLUICE_TRANSFORMER_SHUTDOWN_TIMEOUT`: how long in-flight deliveries
    /// may take after SIGTERM. Default 25s (under Kubernetes' 30s grace).
    #[serde(serialize_with = "serialize_duration")]
    pub shutdown_timeout: Duration,
    /// `SLUICE_TRANSFORMER_GAUGE_INTERVAL`: how often backlog and DLQ gauges are read. Default 5s.
    #[serde(serialize_with = "serialize_duration")]
    pub gauge_interval: Duration,
    /// `SLUICE_KAFKA_BROKERS`: `host:port` of Kafka brokers, comma
    /// separated, for `kafka` targets. Unset: their deliveries are retried
    /// (and dead-lettered by their retry policy).
    pub kafka_brokers: Vec<String>,
    /// `SLUICE_TRANSFORMER_REPLAY_RATE`: archive events one replay sends
    /// per second, so a large replay does not flood the targets. Default 0:
    /// as fast as the deliveries are stored.
    pub replay_rate: u32,
    /// `SLUICE_SCHEDULE_ALLOW_SECONDS`: lets rules use `rate(n seconds)`.
    /// Default false: EventBridge's shortest rate is a minute; this exists
    /// for tests and demonstrations.
    pub schedule_allow_seconds: bool,
    /// NATS, the store, queue limits and telemetry.
    #[serde(flatten)]
    pub common: Common,
}

impl Config {
    /// Reads the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let list = |var: &str| -> Result<Vec<address::Entry>, ConfigError> {
            address::parse_list(&env.string(var, "")).map_err(|e| ConfigError::new(var, e))
        };
        let retry_base = env.duration("SLUICE_TRANSFORMER_RETRY_BASE", Duration::from_secs(1))?;
        let retry_max_delay = env.duration(
            "SLUICE_TRANSFORMER_RETRY_MAX_DELAY",
            Duration::from_secs(300),
        )?;
        if retry_base.is_zero() || retry_max_delay < retry_base {
            return Err(ConfigError::new(
                "SLUICE_TRANSFORMER_RETRY_MAX_DELAY",
                "must be at least SLUICE_TRANSFORMER_RETRY_BASE, which must be above 0",
            ));
        }
        let orchestrator_url = env.opt_string("SLUICE_ORCHESTRATOR_URL");
        if let Some(u) = &orchestrator_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError::new(
                    "SLUICE_ORCHESTRATOR_URL",
                    format!("expected an http:// or https:// URL, got {u:?}"),
                ));
            }
        }
        Ok(Self {
            listen: env.parse(
                "SLUICE_TRANSFORMER_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 8082)),
            )?,
            grpc_listen: env.parse(
                "SLUICE_TRANSFORMER_GRPC_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 9082)),
            )?,
            account: env.string("SLUICE_ACCOUNT", "000000000000"),
            region: env.string("SLUICE_REGION", "local"),
            router_concurrency: env.number(
                "SLUICE_TRANSFORMER_ROUTER_CONCURRENCY",
                256,
                1..=65_536,
            )?,
            router_ack_wait: env
                .duration(
                    "SLUICE_TRANSFORMER_ROUTER_ACK_WAIT",
                    Duration::from_secs(30),
                )?
                .max(Duration::from_secs(1)),
            reload_interval: env
                .duration(
                    "SLUICE_TRANSFORMER_RELOAD_INTERVAL",
                    Duration::from_secs(30),
                )?
                .max(Duration::from_secs(1)),
            max_buses: env.number("SLUICE_TRANSFORMER_MAX_BUSES", 100, 1..=10_000)?,
            max_rules_per_bus: env.number(
                "SLUICE_TRANSFORMER_MAX_RULES_PER_BUS",
                300,
                1..=100_000,
            )?,
            max_queues: env.number("SLUICE_TRANSFORMER_MAX_QUEUES", 1000, 1..=100_000)?,
            queue_max_messages: env.number(
                "SLUICE_TRANSFORMER_QUEUE_MAX_MESSAGES",
                1_000_000,
                1..=1_000_000_000,
            )?,
            default_concurrency: env.number(
                "SLUICE_TRANSFORMER_TARGET_CONCURRENCY",
                16,
                1..=1000,
            )?,
            target_max_pending: env.number(
                "SLUICE_TRANSFORMER_TARGET_MAX_PENDING",
                1000,
                1..=1_000_000,
            )?,
            retry_base,
            retry_max_delay,
            targets_deny: list("SLUICE_TARGETS_DENY")?,
            targets_allow: list("SLUICE_TARGETS_ALLOW")?,
            targets_ca_file: env.opt_string("SLUICE_TARGETS_CA_FILE"),
            orchestrator_url,
            grpc_timeout: env.duration("SLUICE_GRPC_TIMEOUT", Duration::from_secs(5))?,
            shutdown_timeout: env.duration(
                "SLUICE_TRANSFORMER_SHUTDOWN_TIMEOUT",
                Duration::from_secs(25),
            )?,
            gauge_interval: env
                .duration("SLUICE_TRANSFORMER_GAUGE_INTERVAL", Duration::from_secs(5))?,
            kafka_brokers: env
                .string("SLUICE_KAFKA_BROKERS", "")
                .split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_string)
                .collect(),
            replay_rate: env.number("SLUICE_TRANSFORMER_REPLAY_RATE", 0, 0..=10_000_000)?,
            schedule_allow_seconds: env.bool("SLUICE_SCHEDULE_ALLOW_SECONDS", false)?,
            common: Common::from_env(env)?,
        })
    }

    /// The address policy for HTTP targets: the defaults, the transformer's
    /// own addresses and `SLUICE_TARGETS_DENY`, unless `SLUICE_TARGETS_ALLOW`.
    pub fn address_policy(&self) -> address::Policy {
        address::service_policy(
            &[self.listen, self.grpc_listen],
            self.targets_allow.clone(),
            &self.targets_deny,
        )
    }
}

impl sluice_runtime::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.common.telemetry
    }
    fn listen(&self) -> (SocketAddr, &'static str) {
        (self.listen, "SLUICE_TRANSFORMER_LISTEN")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_for_make_up() {
        let c = Config::from_env(&Env::default()).unwrap();
        assert_eq!(c.grpc_listen.port(), 9082);
        assert_eq!(c.max_rules_per_bus, 300);
        let p = c.address_policy();
        let own = address::Host::Ip("127.0.0.1".parse().unwrap());
        assert!(p.refuses(own, 9082).is_some(), "its own gRPC port");
        assert!(p.refuses(own, 8082).is_some(), "its own admin port");
        assert!(p.refuses(own, 7000).is_none());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("SLUICE_TARGETS_DENY", "not a host!"),
            ("SLUICE_ORCHESTRATOR_URL", "grpc://x"),
            ("SLUICE_TRANSFORMER_RETRY_BASE", "0s"),
            ("SLUICE_TRANSFORMER_TARGET_CONCURRENCY", "0"),
        ] {
            let env = Env::default().with(var, value);
            let err = Config::from_env(&env).unwrap_err();
            assert!(
                err.var == var || err.var == "SLUICE_TRANSFORMER_RETRY_MAX_DELAY",
                "{var}: {err}"
            );
        }
    }
}
