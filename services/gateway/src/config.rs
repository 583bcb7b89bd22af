//! The gateway's configuration, from `SLUICE_*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_config::{serialize_duration, ConfigError, Env, TelemetryConfig};
use sluice_runtime::Common;

/// One API key as configured in `SLUICE_GATEWAY_API_KEYS`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who the key authenticates.
    pub principal: String,
    /// The key itself (prefer `sha256`, so the plain key is not in the config).
    #[serde(default, skip_serializing)]
    pub key: Option<String>,
    /// Hex SHA-256 of the key.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Scopes granted; `*` grants all.
    pub scopes: Vec<String>,
}

/// Everything the gateway reads at start.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `SLUICE_GATEWAY_LISTEN`: HTTP address. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `SLUICE_ACCOUNT`: account written into event envelopes. Default `000000000000`.
    pub account: String,
    /// `SLUICE_REGION`: region written into event envelopes. Default `local`.
    pub region: String,
    /// `SLUICE_GATEWAY_API_KEYS`: JSON list of `{"principal","key"|"sha256","scopes"}`.
    pub api_keys: Vec<ApiKeyConfig>,
    /// `SLUICE_GATEWAY_JWT_HS256_SECRET`: shared secret for HS256 bearer tokens.
    #[serde(skip)]
    pub jwt_hs256_secret: Option<String>,
    /// `SLUICE_GATEWAY_JWT_JWKS_URL`: JWKS for RS256/ES256 bearer tokens (cached).
    pub jwt_jwks_url: Option<String>,
    /// `SLUICE_GATEWAY_JWT_ISSUER`: required `iss`, if set.
    pub jwt_issuer: Option<String>,
    /// `SLUICE_GATEWAY_JWT_AUDIENCE`: required `aud`, if set.
    pub jwt_audience: Option<String>,
    /// `SLUICE_GATEWAY_JWKS_TTL`: how long fetched keys are trusted. Default 5m.
    #[serde(serialize_with = "serialize_duration")]
    pub jwks_ttl: Duration,
    /// `SLUICE_GATEWAY_RATE`: requests per second per principal (token refill). Default 1000.
    pub rate_per_second: u32,
    /// `SLUICE_GATEWAY_BURST`: token bucket size per principal. Default 2000.
    pub burst: u32,
    /// `SLUICE_GATEWAY_MAX_IN_FLIGHT`: requests served at once before shedding
    /// with 503. Default 512: well past 2,000 req/s at a few ms each.
    pub max_in_flight: usize,
    /// `SLUICE_GATEWAY_BODY_LIMIT`: largest request body. Default 1MiB.
    pub body_limit: u64,
    /// `SLUICE_GATEWAY_REQUEST_TIMEOUT`: a request taking longer gets 504. Default 10s.
    #[serde(serialize_with = "serialize_duration")]
    pub request_timeout: Duration,
    /// `SLUICE_GATEWAY_IDEMPOTENCY_TTL`: how long an `Idempotency-Key` is remembered. Default 24h.
    #[serde(serialize_with = "serialize_duration")]
    pub idempotency_ttl: Duration,
    /// NATS, the store, queue limits and telemetry.
    #[serde(flatten)]
    pub common: Common,
}

impl Config {
    /// Reads the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const KEYS: &str = "SLUICE_GATEWAY_API_KEYS";
        let api_keys: Vec<ApiKeyConfig> = match env.raw(KEYS) {
            None => Vec::new(),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                ConfigError::new(KEYS, format!("expected a JSON list of keys: {e}"))
            })?,
        };
        for k in &api_keys {
            match (&k.key, &k.sha256) {
                (Some(_), None) => {}
                (None, Some(h)) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {}
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        KEYS,
                        format!("{}: sha256 must be 64 hex digits", k.principal),
                    ))
                }
                _ => {
                    return Err(ConfigError::new(
                        KEYS,
                        format!("{}: give exactly one of key or sha256", k.principal),
                    ))
                }
            }
            if k.scopes.is_empty() {
                return Err(ConfigError::new(
                    KEYS,
                    format!("{}: no scopes", k.principal),
                ));
            }
        }
        let burst: u32 = env.number("SLUICE_GATEWAY_BURST", 2000, 1..=1_000_000)?;
        Ok(Self {
            listen: env.parse(
                "SLUICE_GATEWAY_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            account: env.string("SLUICE_ACCOUNT", "000000000000"),
            region: env.string("SLUICE_REGION", "local"),
            api_keys,
            jwt_hs256_secret: env.opt_string("SLUICE_GATEWAY_JWT_HS256_SECRET"),
            jwt_jwks_url: env.opt_string("SLUICE_GATEWAY_JWT_JWKS_URL"),
            jwt_issuer: env.opt_string("SLUICE_GATEWAY_JWT_ISSUER"),
            jwt_audience: env.opt_string("SLUICE_GATEWAY_JWT_AUDIENCE"),
            jwks_ttl: env.duration("SLUICE_GATEWAY_JWKS_TTL", Duration::from_secs(300))?,
            rate_per_second: env.number("SLUICE_GATEWAY_RATE", 1000, 1..=1_000_000)?,
            burst,
            max_in_flight: env.number("SLUICE_GATEWAY_MAX_IN_FLIGHT", 512, 1..=100_000)?,
            body_limit: env.bytes("SLUICE_GATEWAY_BODY_LIMIT", 1 << 20)?,
            request_timeout: env
                .duration("SLUICE_GATEWAY_REQUEST_TIMEOUT", Duration::from_secs(10))?,
            idempotency_ttl: env.duration(
                "SLUICE_GATEWAY_IDEMPOTENCY_TTL",
                Duration::from_secs(86_400),
            )?,
            common: Common::from_env(env)?,
        })
    }
}

impl sluice_runtime::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.common.telemetry
    }
    fn listen(&self) -> (SocketAddr, &'static str) {
        (self.listen, "SLUICE_GATEWAY_LISTEN")
    }
}
