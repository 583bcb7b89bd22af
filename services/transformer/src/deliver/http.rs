//! `http` targets (EventBridge API destinations): one request per delivery.
//!
//! 2xx is success. 429, 408, 5xx, timeouts and connection errors are
//! retried; a 401 from a target with OAuth credentials drops the cached
//! token and is retried once a new one is fetched; any other status is
//! terminal and goes to the dead-letter queue at once with the response.
//! Redirects are not followed (a 3xx is terminal): a redirect could lead
//! where the address policy would not let the URL go.

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use sluice_outbound::http::{answered, failed, refused};

use super::retry::Outcome;
use super::Meta;
use crate::model::{Auth, CompiledTarget, Http};
use crate::State;

/// Delivers `body` to an HTTP target.
pub async fn send(
    state: &State,
    target: &CompiledTarget,
    http: &Http,
    meta: &Meta<'_>,
    body: Bytes,
    content_type: &'static str,
) -> Outcome {
    if let Some(why) = refused(&state.policy, &http.url).await {
        return Outcome::Terminal {
            reason: why,
            response: None,
        };
    }
    let mut headers = http.headers.clone();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("sluice-delivery-id", meta.delivery_id);
    put("sluice-event-id", meta.event_id);
    put("sluice-bus", &target.bus);
    put("sluice-rule", &target.rule);
    put("sluice-target", &target.id);
    put("sluice-attempt", &meta.attempt.to_string());
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    sluice_telemetry::http_inject(&mut headers);
    let mut oauth_key = None;
    match &http.auth {
        Auth::None => {}
        Auth::Header(name, value) => {
            headers.insert(name.clone(), value.clone());
        }
        Auth::OAuth(o) => {
            let key = format!("{}:{}", target.key, target.fingerprint);
            match state
                .oauth
                .token(&state.http, &key, o, target.timeout)
                .await
            {
                Ok(token) => {
                    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
                        headers.insert(AUTHORIZATION, v);
                    }
                    oauth_key = Some(key);
                }
                Err(outcome) => return outcome,
            }
        }
    }
    let mut req = state
        .http
        .request(http.method.clone(), http.url.clone())
        .timeout(target.timeout)
        .headers(headers);
    if !matches!(http.method, reqwest::Method::GET | reqwest::Method::HEAD) {
        req = req.body(body);
    }
    match req.send().await {
        Ok(resp) => {
            let unauthorized = resp.status() == StatusCode::UNAUTHORIZED;
            match answered(resp).await {
                // The token may have been revoked early: fetch another next time.
                Outcome::Terminal { reason, response } if unauthorized && oauth_key.is_some() => {
                    if let Some(key) = oauth_key {
                        state.oauth.forget(&key);
                    }
                    Outcome::Retry { reason, response }
                }
                other => other,
            }
        }
        Err(e) => failed(&e, target.timeout),
    }
}
