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
    /// `SLUICE_TASKS_TTL`: how long a completed or rejected task is kept. Default 30d.
    #[serde(serialize_with = "serialize_duration")]
    pub tasks_ttl: Duration,
    /// `SLUICE_GATEWAY_IDEMPOTENCY_TTL`: how long an `Idempotency-Key` is remembered. Default 24h.
    #[serde(serialize_with = "serialize_duration")]
    pub idempotency_ttl: Duration,
    /// `SLUICE_TRANSFORMER_URL`: the transformer's gRPC API (buses, rules,
    /// queues). Default `http://127.0.0.1:9082`, where `make up` runs it.
    pub transformer_url: String,
    /// `SLUICE_NOTIFIER_URL`: the notifier's gRPC API (topics). Default
    /// `http://127.0.0.1:9083`, where `make up` runs it.
    pub notifier_url: String,
    /// `SLUICE_ORCHESTRATOR_URL`: the orchestrator's gRPC API (workflows).
    /// Default `http://127.0.0.1:9084`, where `make up` runs it.
    pub orchestrator_url: String,
    /// `SLUICE_GRPC_TIMEOUT`: deadline of every call to another service. Default 5s.
    #[serde(serialize_with = "serialize_duration")]
    pub grpc_timeout: Duration,
    /// Cross-origin requests from browsers (`SLUICE_GATEWAY_CORS_*`).
    pub cors: CorsConfig,
    /// `SLUICE_GATEWAY_ACCESS_LOG`: one JSON line per request (method,
    /// route, status, latency, principal, request and trace ids). Default true.
    pub access_log: bool,
    /// The object store (`SLUICE_S3_*`, `SLUICE_FILES_*`): upload URLs.
    pub files: sluice_files::FilesConfig,
    /// NATS, the store, queue limits and telemetry.
    #[serde(flatten)]
    pub common: Common,
}

/// CORS, as API Gateway configures it. Off unless origins are listed.
#[derive(Debug, Clone, Serialize)]
pub struct CorsConfig {
    /// `SLUICE_GATEWAY_CORS_ORIGINS`: allowed origins, comma-separated
    /// (`https://app.example.com`), or `*`. Default none: CORS is off.
    pub origins: Vec<String>,
    /// `SLUICE_GATEWAY_CORS_METHODS`: allowed methods. Default `GET,POST,PUT,DELETE`.
    pub methods: Vec<String>,
    /// `SLUICE_GATEWAY_CORS_HEADERS`: allowed request headers. Default
    /// `content-type,authorization,x-api-key,idempotency-key,x-request-id,traceparent`.
    pub headers: Vec<String>,
    /// `SLUICE_GATEWAY_CORS_EXPOSE_HEADERS`: response headers scripts may
    /// read. Default `x-request-id,retry-after,idempotent-replayed,traceresponse`.
    pub expose_headers: Vec<String>,
    /// `SLUICE_GATEWAY_CORS_MAX_AGE`: how long a browser may cache a preflight. Default 10m.
    #[serde(serialize_with = "serialize_duration")]
    pub max_age: Duration,
    /// `SLUICE_GATEWAY_CORS_CREDENTIALS`: allow credentialed requests
    /// (cookies, HTTP auth). Default false; never allowed with origin `*`.
    pub credentials: bool,
}

impl CorsConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let list = |var: &str, default: &str| -> Vec<String> {
            env.string(var, default)
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let origins = list("SLUICE_GATEWAY_CORS_ORIGINS", "");
        for o in &origins {
            let ok = o == "*"
                || ((o.starts_with("http://") || o.starts_with("https://"))
                    && !o
                        .trim_end_matches('/')
                        .contains(|c: char| c.is_whitespace())
                    && axum::http::HeaderValue::from_str(o).is_ok());
            if !ok {
                return Err(ConfigError::new(
                    "SLUICE_GATEWAY_CORS_ORIGINS",
                    format!("{o:?} is not an origin (scheme://host[:port]) or *"),
                ));
            }
        }
        if origins.len() > 1 && origins.iter().any(|o| o == "*") {
            return Err(ConfigError::new(
                "SLUICE_GATEWAY_CORS_ORIGINS",
                "* cannot be combined with other origins",
            ));
        }
        let methods = list("SLUICE_GATEWAY_CORS_METHODS", "GET,POST,PUT,DELETE");
        for m in &methods {
            if axum::http::Method::from_bytes(m.as_bytes()).is_err() {
                return Err(ConfigError::new(
                    "SLUICE_GATEWAY_CORS_METHODS",
                    format!("{m:?} is not a method"),
                ));
            }
        }
        let header_list = |var: &str, default: &str| -> Result<Vec<String>, ConfigError> {
            let h = list(var, default);
            for name in &h {
                if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(ConfigError::new(
                        var,
                        format!("{name:?} is not a header name"),
                    ));
                }
            }
            Ok(h)
        };
        let headers = header_list(
            "SLUICE_GATEWAY_CORS_HEADERS",
            "content-type,authorization,x-api-key,idempotency-key,x-request-id,traceparent",
        )?;
        let expose_headers = header_list(
            "SLUICE_GATEWAY_CORS_EXPOSE_HEADERS",
            "x-request-id,retry-after,idempotent-replayed,traceresponse",
        )?;
        let credentials = env.bool("SLUICE_GATEWAY_CORS_CREDENTIALS", false)?;
        if credentials && origins.iter().any(|o| o == "*") {
            return Err(ConfigError::new(
                "SLUICE_GATEWAY_CORS_CREDENTIALS",
                "credentials cannot be allowed for every origin (*); list the origins",
            ));
        }
        Ok(Self {
            origins,
            methods,
            headers,
            expose_headers,
            max_age: env.duration("SLUICE_GATEWAY_CORS_MAX_AGE", Duration::from_secs(600))?,
            credentials,
        })
    }
}

/// A service's gRPC address: an http:// or https:// URL.
fn grpc_url(env: &Env, var: &str, default: &str) -> Result<String, ConfigError> {
    let u = env.string(var, default);
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        return Err(ConfigError::new(
            var,
            format!("expected an http:// or https:// URL, got {u:?}"),
        ));
    }
    Ok(u)
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
            tasks_ttl: env.duration("SLUICE_TASKS_TTL", Duration::from_secs(30 * 86_400))?,
            idempotency_ttl: env.duration(
                "SLUICE_GATEWAY_IDEMPOTENCY_TTL",
                Duration::from_secs(86_400),
            )?,
            transformer_url: grpc_url(env, "SLUICE_TRANSFORMER_URL", "http://127.0.0.1:9082")?,
            notifier_url: grpc_url(env, "SLUICE_NOTIFIER_URL", "http://127.0.0.1:9083")?,
            orchestrator_url: grpc_url(env, "SLUICE_ORCHESTRATOR_URL", "http://127.0.0.1:9084")?,
            grpc_timeout: env.duration("SLUICE_GRPC_TIMEOUT", Duration::from_secs(5))?,
            cors: CorsConfig::from_env(env)?,
            access_log: env.bool("SLUICE_GATEWAY_ACCESS_LOG", true)?,
            files: sluice_files::FilesConfig::from_env(env)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_is_off_by_default_and_never_credentialed_for_every_origin() {
        let c = Config::from_env(&Env::default()).unwrap();
        assert!(c.cors.origins.is_empty());
        let env = Env::default()
            .with("SLUICE_GATEWAY_CORS_ORIGINS", "*")
            .with("SLUICE_GATEWAY_CORS_CREDENTIALS", "true");
        assert_eq!(
            Config::from_env(&env).unwrap_err().var,
            "SLUICE_GATEWAY_CORS_CREDENTIALS"
        );
        let env = Env::default().with("SLUICE_GATEWAY_CORS_ORIGINS", "app.example.com");
        assert_eq!(
            Config::from_env(&env).unwrap_err().var,
            "SLUICE_GATEWAY_CORS_ORIGINS"
        );
        let env = Env::default()
            .with(
                "SLUICE_GATEWAY_CORS_ORIGINS",
                "https://a.example,http://localhost:3000",
            )
            .with("SLUICE_GATEWAY_CORS_CREDENTIALS", "true");
        let c = Config::from_env(&env).unwrap();
        assert_eq!(c.cors.origins.len(), 2);
        assert!(c.cors.credentials);
    }
}
