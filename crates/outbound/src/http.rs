//! Outbound HTTP to endpoints users name (rule targets, webhooks): a
//! client whose resolver obeys the address policy, the checks made before
//! each request, and how a response is classified.
//!
//! Redirects are never followed: a redirect could lead where the address
//! policy would not let the URL go.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::StatusCode;

use crate::address::{Host, Policy};
use crate::retry::Outcome;

/// Most of a response kept for the dead-letter queue.
pub const RESPONSE_PREFIX: usize = 1024;

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
                    "{host} resolves only to addresses sluice may not call"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client outbound calls share: pooled connections, no redirects,
/// the guarded resolver; `extra_roots` trusted besides the system's roots.
pub fn client(
    policy: Arc<Policy>,
    user_agent: &str,
    extra_roots: Vec<reqwest::Certificate>,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_certs_merge(extra_roots)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve names itself, past the guarded resolver.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .pool_max_idle_per_host(256)
        .connect_timeout(std::time::Duration::from_secs(5))
        .user_agent(user_agent)
        .build()
}

/// Why the URL's literal host may not be called, if it may not.
/// Reads the PEM certificates of `path` (`SLUICE_TARGETS_CA_FILE`): roots
/// to trust besides the system's.
pub fn read_roots(path: &str) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{path} is not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path} holds no certificate"));
    }
    Ok(certs)
}

pub fn policy_refuses(policy: &Policy, url: &reqwest::Url) -> Option<String> {
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
pub async fn resolved_refused(policy: &Policy, url: &reqwest::Url) -> Option<String> {
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

/// The address policy's reason, if that is what failed a request.
pub fn caused_by_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        cur = err.source();
    }
    None
}

/// A request error with its causes, one line.
pub fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The status and the first KiB of a response body, for dead letters.
pub async fn response_prefix(mut resp: reqwest::Response) -> String {
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

/// Why `url` may not be called now, checking its literal host and, for a
/// name, what it resolves to.
pub async fn refused(policy: &Policy, url: &reqwest::Url) -> Option<String> {
    if let Some(why) = policy_refuses(policy, url) {
        return Some(why);
    }
    resolved_refused(policy, url).await
}

/// Whether an answer with `status` may succeed later: 429, 408 and 5xx.
pub fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// The outcome of a request that failed before any answer.
pub fn failed(e: &reqwest::Error, timeout: std::time::Duration) -> Outcome {
    if let Some(why) = caused_by_refusal(e) {
        return Outcome::Terminal {
            reason: why,
            response: None,
        };
    }
    let reason = if e.is_timeout() {
        format!("no answer within {}s", timeout.as_secs())
    } else {
        format!("request failed: {}", describe(e))
    };
    Outcome::Retry {
        reason,
        response: None,
    }
}

/// The outcome of an answer: 2xx delivered, [`retryable`] retried, any
/// other status terminal; the response is kept for the dead-letter queue.
pub async fn answered(resp: reqwest::Response) -> Outcome {
    let status = resp.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let response = Some(response_prefix(resp).await);
    let reason = format!("the endpoint answered HTTP {}", status.as_u16());
    if retryable(status) {
        Outcome::Retry { reason, response }
    } else {
        Outcome::Terminal { reason, response }
    }
}
