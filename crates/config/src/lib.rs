//! Typed configuration from `SLUICE_*` environment variables.
//!
//! Every service describes its configuration as a plain struct and fills it
//! from an [`Env`]: each field names its variable, its default and how it is
//! parsed, so a bad value stops the process with one line that names the
//! variable (`SLUICE_GATEWAY_RATE: expected a number, got "fast"`). Shared
//! pieces (NATS, the store, telemetry) are structs of their own here so every
//! service reads them from the same variables.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// A configuration error: the variable and what is wrong with its value.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// Full variable name, e.g. `SLUICE_NATS_URL`.
    pub var: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl ConfigError {
    /// An error about `var`.
    pub fn new(var: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            var: var.into(),
            message: message.into(),
        }
    }
}

/// A snapshot of the environment, read through typed accessors.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The process environment.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    /// An environment made of the given pairs (tests, in-process services).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets one variable (builder style).
    pub fn with(mut self, var: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(var.into(), value.into());
        self
    }

    /// The raw value of `var`, if set and not empty.
    pub fn raw(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// `var` parsed with `FromStr`, or `default` when unset.
    pub fn parse<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(var, format!("invalid value {v:?}: {e}"))),
        }
    }

    /// A string, or `default` when unset.
    pub fn string(&self, var: &str, default: &str) -> String {
        self.raw(var).unwrap_or(default).to_string()
    }

    /// An optional string.
    pub fn opt_string(&self, var: &str) -> Option<String> {
        self.raw(var).map(str::to_string)
    }

    /// A boolean (`true/false/1/0/yes/no`).
    pub fn bool(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(var).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::new(
                    var,
                    format!("expected true or false, got {v:?}"),
                )),
            },
        }
    }

    /// A duration written as `250ms`, `30s`, `5m`, `2h` or `14d`.
    pub fn duration(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => parse_duration(v).map_err(|e| ConfigError::new(var, e)),
        }
    }

    /// A comma-separated list of durations.
    pub fn durations(&self, var: &str, default: &[Duration]) -> Result<Vec<Duration>, ConfigError> {
        match self.raw(var) {
            None => Ok(default.to_vec()),
            Some(v) => v
                .split(',')
                .map(|p| parse_duration(p).map_err(|e| ConfigError::new(var, e)))
                .collect(),
        }
    }

    /// A whole number that must lie in `range`.
    pub fn number<T>(
        &self,
        var: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let v: T = self.parse(var, default)?;
        if !range.contains(&v) {
            return Err(ConfigError::new(
                var,
                format!("{v} is out of range ({}..={})", range.start(), range.end()),
            ));
        }
        Ok(v)
    }

    /// A byte size written as `1048576`, `512KiB`, `1MiB` or `8GiB`.
    pub fn bytes(&self, var: &str, default: u64) -> Result<u64, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => parse_bytes(v).map_err(|e| ConfigError::new(var, e)),
        }
    }
}

/// Parses `250ms`, `30s`, `5m`, `2h`, `14d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 250ms or 5m, got {text:?}"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?} in {text:?} (use ms, s, m, h or d)"
            ))
        }
    };
    Ok(d)
}

/// Parses a byte size: `1048576`, `512KiB`, `1MiB`, `8GiB` (also KB/MB/GB as powers of 1000).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a size like 1048576, 512KiB or 1GiB, got {text:?}"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Serialises a duration as a human string in `--dump-config` output.
pub fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Serialises a list of durations.
pub fn serialize_durations<S: serde::Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(d.len()))?;
    for x in d {
        seq.serialize_element(&format_duration(*x))?;
    }
    seq.end()
}

fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        format!("{ms}ms")
    } else {
        let s = d.as_secs();
        if s != 0 && s % 86_400 == 0 {
            format!("{}d", s / 86_400)
        } else if s != 0 && s % 3600 == 0 {
            format!("{}h", s / 3600)
        } else if s != 0 && s % 60 == 0 {
            format!("{}m", s / 60)
        } else {
            format!("{s}s")
        }
    }
}

/// Where NATS is and how to reach it. Variables: `SLUICE_NATS_*`.
#[derive(Debug, Clone, Serialize)]
pub struct NatsConfig {
    /// `SLUICE_NATS_URL`: server URL(s), comma-separated. Default: the local server `make up` starts.
    pub url: String,
    /// `SLUICE_NATS_CREDS`: path to a `.creds` file (per-service credentials in a cluster).
    pub creds_file: Option<String>,
    /// `SLUICE_NATS_USER` / `SLUICE_NATS_PASSWORD`: a user of the server's own
    /// `authorization` block (the Helm chart gives each service one, with only
    /// the subjects it needs). Both or neither.
    pub user: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
    /// `SLUICE_NATS_STREAM_PREFIX`: prefix for stream and consumer names, so tests and
    /// several environments can share one server. Default empty.
    pub stream_prefix: String,
    /// `SLUICE_NATS_REPLICAS`: stream replicas (3 in a cluster, 1 on a single node).
    pub replicas: usize,
}

impl NatsConfig {
    /// Reads `SLUICE_NATS_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.string("SLUICE_NATS_URL", "nats://127.0.0.1:4222"),
            creds_file: env.opt_string("SLUICE_NATS_CREDS"),
            user: env.opt_string("SLUICE_NATS_USER"),
            password: match (
                env.opt_string("SLUICE_NATS_USER"),
                env.opt_string("SLUICE_NATS_PASSWORD"),
            ) {
                (Some(_), Some(p)) => Some(p),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(ConfigError::new(
                        "SLUICE_NATS_PASSWORD",
                        "is required when SLUICE_NATS_USER is set",
                    ))
                }
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        "SLUICE_NATS_USER",
                        "is required when SLUICE_NATS_PASSWORD is set",
                    ))
                }
            },
            stream_prefix: env.string("SLUICE_NATS_STREAM_PREFIX", ""),
            replicas: env.number("SLUICE_NATS_REPLICAS", 1, 1..=5)?,
        })
    }
}

/// Where the DynamoDB-API store is. Variables: `SLUICE_STORE_*`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreConfig {
    /// `SLUICE_STORE_ENDPOINT_URL`: Alternator (or any DynamoDB-API) endpoint.
    /// Default: the local DynamoDB Local that `make up` starts.
    pub endpoint_url: String,
    /// `SLUICE_STORE_REGION`: signing region; Alternator ignores it. Default `local`.
    pub region: String,
    /// `SLUICE_STORE_TABLE_PREFIX`: prefix of every table name. Default `sluice_`.
    pub table_prefix: String,
    /// `SLUICE_STORE_ACCESS_KEY_ID` / `SLUICE_STORE_SECRET_ACCESS_KEY`: credentials;
    /// Alternator with authorization disabled and DynamoDB Local accept any.
    #[serde(skip)]
    pub access_key_id: String,
    #[serde(skip)]
    pub secret_access_key: String,
    /// `SLUICE_STORE_CREATE_TABLES`: create missing tables at start. Default true.
    pub create_tables: bool,
    /// `SLUICE_STORE_TIMEOUT`: per-operation timeout. Default 5s.
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
}

impl StoreConfig {
    /// Reads `SLUICE_STORE_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            endpoint_url: env.string("SLUICE_STORE_ENDPOINT_URL", "http://127.0.0.1:8000"),
            region: env.string("SLUICE_STORE_REGION", "local"),
            table_prefix: env.string("SLUICE_STORE_TABLE_PREFIX", "sluice_"),
            access_key_id: env.string("SLUICE_STORE_ACCESS_KEY_ID", "sluice"),
            secret_access_key: env.string("SLUICE_STORE_SECRET_ACCESS_KEY", "sluice"),
            create_tables: env.bool("SLUICE_STORE_CREATE_TABLES", true)?,
            timeout: env.duration("SLUICE_STORE_TIMEOUT", Duration::from_secs(5))?,
        })
    }
}

/// Logs, traces and metrics. Variables: `SLUICE_LOG`, `SLUICE_LOG_FORMAT`, `SLUICE_OTLP_ENDPOINT`.
#[derive(Debug, Clone, Serialize)]
pub struct TelemetryConfig {
    /// `SLUICE_LOG`: log filter in `RUST_LOG` syntax. Default `info`.
    pub log_filter: String,
    /// `SLUICE_LOG_FORMAT`: `json` (default, for machines) or `text`.
    pub log_format: LogFormat,
    /// `SLUICE_OTLP_ENDPOINT`: OTLP/HTTP endpoint, e.g. `http://127.0.0.1:4318`.
    /// Unset: spans are still created and propagated, but not exported.
    pub otlp_endpoint: Option<String>,
    /// `SLUICE_TRACE_SAMPLE_RATIO`: share of root traces kept, 0.0–1.0. Default 1.0.
    pub sample_ratio: f64,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

impl TelemetryConfig {
    /// Reads the telemetry variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let log_format = match env.string("SLUICE_LOG_FORMAT", "json").as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(ConfigError::new(
                    "SLUICE_LOG_FORMAT",
                    format!("expected json or text, got {other:?}"),
                ))
            }
        };
        let sample_ratio: f64 = env.parse("SLUICE_TRACE_SAMPLE_RATIO", 1.0)?;
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(ConfigError::new(
                "SLUICE_TRACE_SAMPLE_RATIO",
                format!("{sample_ratio} is not between 0.0 and 1.0"),
            ));
        }
        Ok(Self {
            log_filter: env.string("SLUICE_LOG", "info"),
            log_format,
            otlp_endpoint: env.opt_string("SLUICE_OTLP_ENDPOINT"),
            sample_ratio,
        })
    }
}

/// Reads a service's configuration or exits the process with one line on
/// stderr naming the variable (before telemetry exists). Handles
/// `--dump-config` by printing the effective configuration as JSON and exiting.
pub fn load_or_exit<T: Serialize>(
    service: &str,
    read: impl FnOnce(&Env) -> Result<T, ConfigError>,
) -> T {
    let env = Env::from_process();
    let config = match read(&env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice-{service}: configuration error: {e}");
            std::process::exit(2);
        }
    };
    if std::env::args().any(|a| a == "--dump-config") {
        match serde_json::to_string_pretty(&config) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("sluice-{service}: cannot print configuration: {e}"),
        }
        std::process::exit(0);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("SLUICE_X", "fast")]);
        let err = env.number("SLUICE_X", 5u32, 1..=10).unwrap_err();
        assert_eq!(err.var, "SLUICE_X");
        assert!(err.to_string().starts_with("SLUICE_X: "), "{err}");
        let env = Env::from_pairs([("SLUICE_X", "50")]);
        let err = env.number("SLUICE_X", 5u32, 1..=10).unwrap_err();
        assert!(err.message.contains("out of range"), "{err}");
    }

    #[test]
    fn unset_and_empty_fall_back_to_the_default() {
        let env = Env::from_pairs([("SLUICE_EMPTY", "  ")]);
        assert_eq!(env.number("SLUICE_EMPTY", 7u32, 1..=10).unwrap(), 7);
        assert_eq!(env.number("SLUICE_UNSET", 7u32, 1..=10).unwrap(), 7);
        assert!(env.bool("SLUICE_UNSET", true).unwrap());
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("1PB").is_err());
        assert!(parse_bytes("99999999999999GiB").is_err());
    }

    #[test]
    fn durations_round_trip_through_dump_format() {
        for s in ["250ms", "30s", "5m", "2h", "14d"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(format_duration(d), s);
        }
    }

    #[test]
    fn a_nats_user_needs_its_password_and_the_password_is_never_dumped() {
        let env = Env::from_pairs([("SLUICE_NATS_USER", "processor")]);
        let err = NatsConfig::from_env(&env).unwrap_err();
        assert_eq!(err.var, "SLUICE_NATS_PASSWORD");
        let env = Env::from_pairs([("SLUICE_NATS_PASSWORD", "s3cret")]);
        assert_eq!(
            NatsConfig::from_env(&env).unwrap_err().var,
            "SLUICE_NATS_USER"
        );
        let env = Env::from_pairs([
            ("SLUICE_NATS_USER", "processor"),
            ("SLUICE_NATS_PASSWORD", "s3cret"),
        ]);
        let config = NatsConfig::from_env(&env).unwrap();
        assert_eq!(config.password.as_deref(), Some("s3cret"));
        let dumped = serde_json::to_string(&config).unwrap();
        assert!(
            dumped.contains("processor") && !dumped.contains("s3cret"),
            "{dumped}"
        );
    }
}
