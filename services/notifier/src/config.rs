//! The notifier's configuration, from `SLUICE_*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use sluice_config::{serialize_duration, ConfigError, Env, TelemetryConfig};
use sluice_outbound::address;
use sluice_runtime::Common;

/// A subscription's delivery policy where it sets none.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DeliveryDefaults {
    /// `SLUICE_NOTIFIER_MAX_RETRIES`: retries after the first attempt. Default 10.
    pub max_retries: u32,
    /// `SLUICE_NOTIFIER_MAX_AGE`: a delivery older than this is dead-lettered. Default 1d.
    #[serde(serialize_with = "serialize_duration")]
    pub max_age: Duration,
    /// `SLUICE_NOTIFIER_MAX_CONCURRENCY`: deliveries in flight per subscription and replica. Default 10.
    pub max_concurrency: u32,
    /// `SLUICE_NOTIFIER_TIMEOUT`: how long one webhook call or email may take. Default 15s (SNS's).
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
}

/// Where email goes.
#[derive(Debug, Clone, Serialize)]
pub struct Smtp {
    /// `SLUICE_SMTP_URL`: `smtps://user:password@host:465` (TLS),
    /// `smtp://user:password@host:587` (STARTTLS, required), or with
    /// `?tls=none` for a server on this machine. The password is not shown.
    #[serde(serialize_with = "redacted_url")]
    pub url: url::Url,
    /// `SLUICE_SMTP_CA_FILE`: a PEM certificate trusted besides the usual roots.
    pub ca_file: Option<String>,
    /// `SLUICE_SMTP_FROM`: the sender address. Default `sluice@localhost`.
    pub from: String,
}

fn redacted_url<S: serde::Serializer>(u: &url::Url, s: S) -> Result<S::Ok, S::Error> {
    let mut u = u.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("REDACTED"));
    }
    s.serialize_str(u.as_str())
}

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
    /// `SLUICE_PUBLIC_URL`: the gateway as users reach it; confirmation and
    /// unsubscribe links point there. Default `http://127.0.0.1:8080`.
    pub public_url: url::Url,
    /// Email; unset `SLUICE_SMTP_URL`: email subscriptions are refused.
    pub smtp: Option<Smtp>,
    /// Delivery policy defaults.
    pub delivery: DeliveryDefaults,
    /// `SLUICE_NOTIFIER_RETRY_BASE`: first retry delay (doubling, with jitter). Default 1s.
    #[serde(serialize_with = "serialize_duration")]
    pub retry_base: Duration,
    /// `SLUICE_NOTIFIER_RETRY_MAX_DELAY`: longest retry delay. Default 5m.
    #[serde(serialize_with = "serialize_duration")]
    pub retry_max_delay: Duration,
    /// `SLUICE_NOTIFIER_MAX_PENDING`: deliveries one subscription may have
    /// handed out and not yet settled, across replicas (waiting retries
    /// count). Default 1000.
    pub max_pending: i64,
    /// `SLUICE_NOTIFIER_RELOAD_INTERVAL`: how often the subscriptions
    /// delivered to are read again besides when one changes. Default 30s.
    #[serde(serialize_with = "serialize_duration")]
    pub reload_interval: Duration,
    /// `SLUICE_TARGETS_DENY` / `SLUICE_TARGETS_ALLOW`: as for rule targets,
    /// the addresses webhooks may not (or may) reach.
    #[serde(skip)]
    pub targets_deny: Vec<address::Entry>,
    /// See `targets_deny`.
    #[serde(skip)]
    pub targets_allow: Vec<address::Entry>,
    /// `SLUICE_TARGETS_CA_FILE`: PEM certificates that https webhooks and
    /// HTTP targets trust besides the system's roots (a private CA).
    pub targets_ca_file: Option<String>,
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
        let public_url = env.string("SLUICE_PUBLIC_URL", "http://127.0.0.1:8080");
        let public_url = url::Url::parse(&public_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ConfigError::new(
                    "SLUICE_PUBLIC_URL",
                    format!("expected an http:// or https:// URL, got {public_url:?}"),
                )
            })?;
        let smtp = match env.opt_string("SLUICE_SMTP_URL") {
            None => None,
            Some(text) => {
                let url = url::Url::parse(&text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "smtp" | "smtps") && u.host().is_some())
                    .ok_or_else(|| {
                        ConfigError::new(
                            "SLUICE_SMTP_URL",
                            "expected smtps://[user:password@]host[:port] or smtp://...[?tls=required|opportunistic|none]",
                        )
                    })?;
                Some(Smtp {
                    url,
                    ca_file: env.opt_string("SLUICE_SMTP_CA_FILE"),
                    from: env.string("SLUICE_SMTP_FROM", "sluice@localhost"),
                })
            }
        };
        let retry_base = env.duration("SLUICE_NOTIFIER_RETRY_BASE", Duration::from_secs(1))?;
        let retry_max_delay =
            env.duration("SLUICE_NOTIFIER_RETRY_MAX_DELAY", Duration::from_secs(300))?;
        if retry_base.is_zero() || retry_max_delay < retry_base {
            return Err(ConfigError::new(
                "SLUICE_NOTIFIER_RETRY_MAX_DELAY",
                "must be at least SLUICE_NOTIFIER_RETRY_BASE, which must be above 0",
            ));
        }
        let timeout = env.duration("SLUICE_NOTIFIER_TIMEOUT", Duration::from_secs(15))?;
        if timeout.is_zero() || timeout > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "SLUICE_NOTIFIER_TIMEOUT",
                "must be above 0 and at most 60s",
            ));
        }
        let delivery = DeliveryDefaults {
            max_retries: env.number("SLUICE_NOTIFIER_MAX_RETRIES", 10, 0..=100)?,
            max_age: env.duration("SLUICE_NOTIFIER_MAX_AGE", Duration::from_secs(86_400))?,
            max_concurrency: env.number("SLUICE_NOTIFIER_MAX_CONCURRENCY", 10, 1..=1000)?,
            timeout,
        };
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
            public_url,
            smtp,
            delivery,
            retry_base,
            retry_max_delay,
            max_pending: env.number("SLUICE_NOTIFIER_MAX_PENDING", 1000, 1..=1_000_000)?,
            reload_interval: env
                .duration("SLUICE_NOTIFIER_RELOAD_INTERVAL", Duration::from_secs(30))?,
            targets_deny: list("SLUICE_TARGETS_DENY")?,
            targets_allow: list("SLUICE_TARGETS_ALLOW")?,
            targets_ca_file: env.opt_string("SLUICE_TARGETS_CA_FILE"),
            common: Common::from_env(env)?,
        })
    }

    /// Which addresses webhooks may reach.
    pub fn address_policy(&self) -> address::Policy {
        address::service_policy(
            &[self.listen, self.grpc_listen],
            self.targets_allow.clone(),
            &self.targets_deny,
        )
    }

    /// A link under the public URL: `path` and its query.
    pub fn link(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut u = self.public_url.clone();
        let base = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base}{path}"));
        if query.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(query);
        }
        u.to_string()
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
        assert!(c.smtp.is_none());
        assert_eq!(
            c.link("/v1/topics/t/subscriptions/s/confirm", &[("token", "a b")]),
            "http://127.0.0.1:8080/v1/topics/t/subscriptions/s/confirm?token=a+b"
        );
    }

    #[test]
    fn the_smtp_password_is_not_shown() {
        let env = Env::default().with("SLUICE_SMTP_URL", "smtps://me:secret@mail.example:465");
        let c = Config::from_env(&env).unwrap();
        let shown = serde_json::to_string(&c).unwrap();
        assert!(
            !shown.contains("secret") && shown.contains("REDACTED"),
            "{shown}"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("SLUICE_NOTIFIER_MAX_TOPICS", "0"),
            ("SLUICE_NOTIFIER_GRPC_LISTEN", "nowhere"),
            ("SLUICE_PUBLIC_URL", "ftp://x"),
            ("SLUICE_SMTP_URL", "http://mail"),
            ("SLUICE_NOTIFIER_TIMEOUT", "2m"),
        ] {
            let err = Config::from_env(&Env::default().with(var, value)).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
    }
}
