//! OAuth 2.0 client-credentials tokens for HTTP targets: fetched from the
//! target's token URL, cached per target until shortly before they expire,
//! fetched by one delivery while the others wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::retry::Outcome;
use crate::model::OAuth;

/// A token is refreshed this long before it expires.
const EARLY: Duration = Duration::from_secs(30);
/// Lifetime assumed when the token response gives none.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest a token is trusted, whatever the response says.
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);
/// Largest token response read.
const MAX_RESPONSE: usize = 64 * 1024;

/// Reads at most `MAX_RESPONSE` bytes of a body.
async fn body_prefix(mut resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() <= MAX_RESPONSE {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    refresh_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

/// The cache.
#[derive(Debug, Default)]
pub struct Tokens {
    slots: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Tokens {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key.to_string()).or_default().clone()
    }

    /// Forgets the cached token of `key` (after a 401).
    pub fn forget(&self, key: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(key);
    }

    /// A valid token for `key`, fetched if needed. A failure says whether
    /// retrying can help (the token endpoint is down) or not (it refused).
    pub async fn token(
        &self,
        http: &reqwest::Client,
        key: &str,
        o: &OAuth,
        timeout: Duration,
    ) -> Result<String, Outcome> {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref() {
            if Instant::now() < t.refresh_at {
                return Ok(t.value.clone());
            }
        }
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &o.scope {
            form.push(("scope", scope));
        }
        let resp = http
            .post(o.token_url.clone())
            .basic_auth(&o.client_id, Some(&o.client_secret))
            .form(&form)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Outcome::Retry {
                reason: format!("the OAuth token endpoint did not answer: {e}"),
                response: None,
            })?;
        let status = resp.status();
        let body = body_prefix(resp).await;
        if !status.is_success() {
            let response = Some(format!(
                "{} {}",
                status.as_u16(),
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(1024)
                    .collect::<String>()
            ));
            let reason = format!("the OAuth token endpoint answered HTTP {}", status.as_u16());
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                Outcome::Retry { reason, response }
            } else {
                Outcome::Terminal { reason, response }
            });
        }
        if body.len() > MAX_RESPONSE {
            return Err(Outcome::Terminal {
                reason: format!("the OAuth token response is larger than {MAX_RESPONSE} bytes"),
                response: None,
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| Outcome::Terminal {
                reason: format!("the OAuth token response is not a token: {e}"),
                response: None,
            })?;
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME)
            .min(MAX_LIFETIME);
        let refresh_at =
            Instant::now() + lifetime.saturating_sub(EARLY).max(Duration::from_secs(1));
        *guard = Some(Token {
            value: parsed.access_token.clone(),
            refresh_at,
        });
        Ok(parsed.access_token)
    }
}
