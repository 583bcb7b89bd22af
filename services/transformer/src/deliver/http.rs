//! `http` targets (EventBridge API destinations): one request per delivery.
//!
//! 2xx is success. 429, 408, 5xx, timeouts and connection errors are
//! retried; a 401 from a target with OAuth credentials drops the cached
//! token and is retried once a new one is fetched; any other status is
//! terminal and goes to the dead-letter queue at once with the response.
//! Redirects are not followed (a 3xx is terminal): a redirect could lead
//! where the address policy would not let the URL go.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;

use super::retry::Outcome;
use super::Meta;
use crate::address::{Host, Policy};
use crate::model::{Auth, CompiledTarget, Http};
use crate::State;

/// Most of a response kept for the dead-letter queue.
const RESPONSE_PREFIX: usize = 1024;

/// A resolution that only the address policy refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// A DNS resolver that drops addresses HTTP targets may not reach, so a
/// name cannot be pointed at them after its rule was accepted.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<Policy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| !policy.refuses_resolved(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused(format!(
                    "{host} resolves only to addresses targets may not reach"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client every HTTP target shares: pooled connections, no redirects,
/// the guarded resolver.
pub fn client(policy: Arc<Policy>) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve names itself, past the guarded resolver.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .pool_max_idle_per_host(256)
        .connect_timeout(std::time::Duration::from_secs(5))
        .user_agent(concat!("sluice-transformer/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn policy_refuses(policy: &Policy, url: &reqwest::Url) -> Option<String> {
    let port = url.port_or_known_default().unwrap_or(80);
    let host = match url.host()? {
        url::Host::Ipv4(ip) => Host::Ip(ip.into()),
        url::Host::Ipv6(ip) => Host::Ip(ip.into()),
        url::Host::Domain(d) => Host::Name(d),
    };
    policy.refuses(host, port)
}

/// A name is also checked with its port against every deny entry, as it
/// resolves now (the resolver then refuses denied networks whatever the
/// port, when the connection is made).
async fn resolved_refused(policy: &Policy, url: &reqwest::Url) -> Option<String> {
    let Some(url::Host::Domain(name)) = url.host() else {
        return None;
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = tokio::net::lookup_host((name, port)).await.ok()?;
    for a in addrs {
        if let Some(why) = policy.refuses(Host::Ip(a.ip()), port) {
            return Some(format!("{name} resolves to a refused address: {why}"));
        }
    }
    None
}

fn caused_by_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        cur = err.source();
    }
    None
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

async fn response_prefix(mut resp: reqwest::Response) -> String {
    let status = resp.status();
    let mut body = Vec::new();
    while body.len() < RESPONSE_PREFIX {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body.truncate(RESPONSE_PREFIX);
    format!("{} {}", status.as_u16(), String::from_utf8_lossy(&body))
}

/// Delivers `body` to an HTTP target.
pub async fn send(
    state: &State,
    target: &CompiledTarget,
    http: &Http,
    meta: &Meta<'_>,
    body: Bytes,
    content_type: &'static str,
) -> Outcome {
    if let Some(why) = policy_refuses(&state.policy, &http.url) {
        return Outcome::Terminal {
            reason: why,
            response: None,
        };
    }
    if let Some(why) = resolved_refused(&state.policy, &http.url).await {
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
            let status = resp.status();
            if status.is_success() {
                return Outcome::Delivered;
            }
            let response = Some(response_prefix(resp).await);
            let reason = format!("the target answered HTTP {}", status.as_u16());
            if status == StatusCode::UNAUTHORIZED {
                if let Some(key) = oauth_key {
                    // The token may have been revoked early: fetch another next time.
                    state.oauth.forget(&key);
                    return Outcome::Retry { reason, response };
                }
            }
            if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
                || status.is_server_error()
            {
                Outcome::Retry { reason, response }
            } else {
                Outcome::Terminal { reason, response }
            }
        }
        Err(e) => {
            if let Some(why) = caused_by_refusal(&e) {
                return Outcome::Terminal {
                    reason: why,
                    response: None,
                };
            }
            let reason = if e.is_timeout() {
                format!("no answer within {}s", target.timeout.as_secs())
            } else {
                format!("request failed: {}", describe(&e))
            };
            Outcome::Retry {
                reason,
                response: None,
            }
        }
    }
}
