//! Authentication (API keys, JWT bearer tokens) and scopes.
//!
//! - `x-api-key: <key>`: looked up by its SHA-256, so configs may hold
//!   hashes only and the lookup does not compare secrets byte by byte.
//! - `Authorization: Bearer <jwt>`: HS256 with the configured secret, or
//!   RS256/ES256 with a key from the configured JWKS (cached for the TTL,
//!   refetched at most every 30 s when an unknown `kid` shows up). `exp` is
//!   required; `iss`/`aud` are checked when configured. Scopes come from
//!   `scope` (space-separated) or `scp` (list).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::config::Config;
use crate::error::ApiError;

/// Scopes the API checks.
pub mod scope {
    /// Post events.
    pub const EVENTS_WRITE: &str = "events:write";
    /// Read event status.
    pub const EVENTS_READ: &str = "events:read";
    /// Place orders.
    pub const ORDERS_WRITE: &str = "orders:write";
    /// Read orders.
    pub const ORDERS_READ: &str = "orders:read";
    /// Read stock.
    pub const INVENTORY_READ: &str = "inventory:read";
    /// Try patterns, filter policies and input transformers.
    pub const RULES_TEST: &str = "rules:test";
    /// Set stock, list and redrive dead letters.
    pub const ADMIN: &str = "admin";
    /// Read buses and rules.
    pub const RULES_READ: &str = "rules:read";
    /// Create, change and delete buses, rules and targets.
    pub const RULES_WRITE: &str = "rules:write";
    /// Create, read and delete queues.
    pub const QUEUES_ADMIN: &str = "queues:admin";
    /// Send messages to queues.
    pub const QUEUES_SEND: &str = "queues:send";
    /// Receive, delete and change the visibility of queue messages.
    pub const QUEUES_CONSUME: &str = "queues:consume";
    /// Create, read and delete topics.
    pub const TOPICS_ADMIN: &str = "topics:admin";
    /// Publish to topics.
    pub const TOPICS_PUBLISH: &str = "topics:publish";
    /// Read and list tasks.
    pub const TASKS_READ: &str = "tasks:read";
    /// Create, change and delete tasks.
    pub const TASKS_WRITE: &str = "tasks:write";
    /// Read and list workflows.
    pub const WORKFLOWS_READ: &str = "workflows:read";
    /// Start, signal and cancel workflows.
    pub const WORKFLOWS_WRITE: &str = "workflows:write";
    /// Read files.
    pub const FILES_READ: &str = "files:read";
    /// Register files (upload URLs).
    pub const FILES_WRITE: &str = "files:write";
}

/// Who is calling, with what rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Name (API key principal or JWT `sub`).
    pub name: String,
    /// Granted scopes (`*` = all).
    pub scopes: Vec<String>,
}

impl Principal {
    /// Fails with 403 unless the principal has `scope`.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope || s == "*") {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Vec<String>>,
}

#[derive(Debug)]
struct Jwks {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    cache: RwLock<Option<(Instant, JwkSet)>>,
}

/// Checks credentials.
pub struct Authenticator {
    keys: HashMap<[u8; 32], Principal>,
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Option<String>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("api_keys", &self.keys.len())
            .field("hs256", &self.hs256.is_some())
            .field("jwks", &self.jwks.as_ref().map(|j| &j.url))
            .finish()
    }
}

impl Authenticator {
    /// Builds the authenticator from the configuration.
    pub fn new(config: &Config) -> Arc<Self> {
        let mut keys = HashMap::new();
        for k in &config.api_keys {
            let digest = match (&k.key, &k.sha256) {
                (Some(key), _) => sha256(key.as_bytes()),
                (None, Some(h)) => {
                    let mut d = [0u8; 32];
                    if hex::decode_to_slice(h, &mut d).is_err() {
                        continue;
                    }
                    d
                }
                (None, None) => continue,
            };
            keys.insert(
                digest,
                Principal {
                    name: k.principal.clone(),
                    scopes: k.scopes.clone(),
                },
            );
        }
        Arc::new(Self {
            keys,
            hs256: config
                .jwt_hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks: config.jwt_jwks_url.as_ref().map(|url| Jwks {
                url: url.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap_or_default(),
                ttl: config.jwks_ttl,
                cache: RwLock::new(None),
            }),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        })
    }

    /// Authenticates from request headers.
    pub async fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Principal, ApiError> {
        let api_key = headers.get("x-api-key");
        if api_key.is_some() && headers.contains_key(axum::http::header::AUTHORIZATION) {
            // Two credentials are ambiguous: refuse rather than pick one.
            return Err(ApiError::Unauthorized(
                "send one credential: x-api-key or Authorization, not both".into(),
            ));
        }
        if let Some(key) = api_key {
            return self
                .keys
                .get(&sha256(key.as_bytes()))
                .cloned()
                .ok_or_else(|| ApiError::Unauthorized("unknown API key".into()));
        }
        if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) {
            let auth = auth
                .to_str()
                .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
            let token = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
                .ok_or_else(|| ApiError::Unauthorized("expected a Bearer token".into()))?;
            return self.verify_jwt(token.trim()).await;
        }
        Err(ApiError::Unauthorized(
            "missing credentials: send x-api-key or Authorization: Bearer".into(),
        ))
    }

    async fn verify_jwt(&self, token: &str) -> Result<Principal, ApiError> {
        let bad = |e: &dyn std::fmt::Display| ApiError::Unauthorized(format!("invalid token: {e}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(&e))?;
        let key = match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| ApiError::Unauthorized("HS256 tokens are not accepted".into()))?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    ApiError::Unauthorized("no JWKS is configured for this token".into())
                })?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| ApiError::Unauthorized("token has no kid".into()))?;
                jwks.key(kid).await?
            }
            other => {
                return Err(ApiError::Unauthorized(format!(
                    "algorithm {other:?} is not accepted"
                )))
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| bad(&e))?;
        let mut scopes: Vec<String> = data
            .claims
            .scope
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        scopes.extend(data.claims.scp.unwrap_or_default());
        Ok(Principal {
            name: data.claims.sub,
            scopes,
        })
    }
}

impl Jwks {
    async fn key(&self, kid: &str) -> Result<DecodingKey, ApiError> {
        {
            let cache = self.cache.read().await;
            if let Some((fetched, set)) = cache.as_ref() {
                let fresh = fetched.elapsed() < self.ttl;
                let recent = fetched.elapsed() < Duration::from_secs(30);
                if let Some(jwk) = set.find(kid) {
                    if fresh {
                        return DecodingKey::from_jwk(jwk).map_err(|e| {
                            ApiError::Unauthorized(format!("unusable JWKS key: {e}"))
                        });
                    }
                } else if recent {
                    return Err(ApiError::Unauthorized(format!("unknown key id {kid:?}")));
                }
            }
        }
        let set: JwkSet = async {
            self.http
                .get(&self.url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
        }
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot fetch JWKS: {e}")))?;
        let found = set.find(kid).cloned();
        *self.cache.write().await = Some((Instant::now(), set));
        let jwk = found.ok_or_else(|| ApiError::Unauthorized(format!("unknown key id {kid:?}")))?;
        DecodingKey::from_jwk(&jwk)
            .map_err(|e| ApiError::Unauthorized(format!("unusable JWKS key: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use sluice_config::Env;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut env = Env::default().with(
            "SLUICE_GATEWAY_API_KEYS",
            r#"[{"principal":"ops","key":"k-ops","scopes":["*"]},
                {"principal":"reader","sha256":"9fbf4c2a2b47e3fa7db0e2e4ac2a1df44e64e6b3b0b1ca43bb0f0c5ea93f8b01","scopes":["events:read"]}]"#,
        );
        for (k, v) in extra {
            env = env.with(*k, *v);
        }
        Config::from_env(&env).unwrap()
    }

    fn headers(name: &str, value: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[tokio::test]
    async fn api_keys_authenticate_by_hash() {
        let auth = Authenticator::new(&config(&[]));
        let p = auth
            .authenticate(&headers("x-api-key", "k-ops"))
            .await
            .unwrap();
        assert_eq!(p.name, "ops");
        assert!(p.require(scope::ADMIN).is_ok());
        let err = auth
            .authenticate(&headers("x-api-key", "nope"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[tokio::test]
    async fn missing_credentials_are_401_and_missing_scope_403() {
        let auth = Authenticator::new(&config(&[]));
        let err = auth
            .authenticate(&axum::http::HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 401);
        let p = Principal {
            name: "r".into(),
            scopes: vec!["events:read".into()],
        };
        assert_eq!(p.require(scope::EVENTS_WRITE).unwrap_err().status(), 403);
    }

    #[tokio::test]
    async fn hs256_tokens_carry_scopes_and_expire() {
        let auth = Authenticator::new(&config(&[("SLUICE_GATEWAY_JWT_HS256_SECRET", "s3cret")]));
        let key = EncodingKey::from_secret(b"s3cret");
        let token = |exp: u64, secret: &EncodingKey| {
            encode(
                &Header::new(Algorithm::HS256),
                &serde_json::json!({"sub": "svc", "exp": exp, "scope": "events:write orders:read"}),
                secret,
            )
            .unwrap()
        };
        let ok = token(now() + 600, &key);
        let p = auth
            .authenticate(&headers("authorization", &format!("Bearer {ok}")))
            .await
            .unwrap();
        assert_eq!(p.name, "svc");
        assert_eq!(p.scopes, vec!["events:write", "orders:read"]);

        let expired = token(now() - 3600, &key);
        let err = auth
            .authenticate(&headers("authorization", &format!("Bearer {expired}")))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 401);
        assert!(err.to_string().contains("Expired"), "{err}");

        let forged = token(now() + 600, &EncodingKey::from_secret(b"guess"));
        let err = auth
            .authenticate(&headers("authorization", &format!("Bearer {forged}")))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[tokio::test]
    async fn alg_none_and_garbage_tokens_are_refused() {
        let auth = Authenticator::new(&config(&[("SLUICE_GATEWAY_JWT_HS256_SECRET", "s3cret")]));
        // {"alg":"none"} . {"sub":"x","exp":9999999999} .
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        for t in [none, "garbage", "a.b.c"] {
            let err = auth
                .authenticate(&headers("authorization", &format!("Bearer {t}")))
                .await
                .unwrap_err();
            assert_eq!(err.status(), 401, "{t}");
        }
    }

    /// A P-256 test key (PKCS#8) and its public JWK coordinates.
    const EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgF3jrzwUeUYu2pR/8
ntT/l11kVYudT7XuJDW22+2zO4ChRANCAARsTajV71cuOJJI3o+rXgn5H2iTCDmH
jpBokVqDabqCzDC46Ns7gz4ROtauqDilC1REKf1Aa/i7ICXxqiciEiwe
-----END PRIVATE KEY-----
";
    const EC_X: &str = "bE2o1e9XLjiSSN6Pq14J-R9okwg5h46QaJFag2m6gsw";
    const EC_Y: &str = "MLjo2zuDPhE61q6oOKULVEQp_UBr-LsgJfGqJyISLB4";

    #[tokio::test]
    async fn es256_tokens_verify_against_a_cached_jwks() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
            "use": "sig", "alg": "ES256", "x": EC_X, "y": EC_Y}]});
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let auth = Authenticator::new(&config(&[("SLUICE_GATEWAY_JWT_JWKS_URL", &url)]));
        let key = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
        let sign = |kid: &str| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.into());
            encode(
                &header,
                &serde_json::json!({"sub": "svc-es", "exp": now() + 600, "scp": ["orders:write"]}),
                &key,
            )
            .unwrap()
        };
        for _ in 0..3 {
            let p = auth
                .authenticate(&headers("authorization", &format!("Bearer {}", sign("k1"))))
                .await
                .unwrap();
            assert_eq!(p.name, "svc-es");
            assert_eq!(p.scopes, vec!["orders:write"]);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "keys are cached");

        // An unknown kid triggers at most one refetch per 30 s, then 401.
        for _ in 0..3 {
            let err = auth
                .authenticate(&headers("authorization", &format!("Bearer {}", sign("k2"))))
                .await
                .unwrap_err();
            assert_eq!(err.status(), 401);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn key_config_mistakes_name_the_variable() {
        let env = Env::default().with(
            "SLUICE_GATEWAY_API_KEYS",
            r#"[{"principal":"x","scopes":["*"]}]"#,
        );
        assert_eq!(
            Config::from_env(&env).unwrap_err().var,
            "SLUICE_GATEWAY_API_KEYS"
        );
        let env = Env::default().with("SLUICE_GATEWAY_API_KEYS", "not json");
        assert_eq!(
            Config::from_env(&env).unwrap_err().var,
            "SLUICE_GATEWAY_API_KEYS"
        );
    }
}
