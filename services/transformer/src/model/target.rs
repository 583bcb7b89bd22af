//! Targets: checked field by field, with pointers into the flat JSON form
//! the REST API uses (`url`, `method`, `headers`, `auth`, `queue`, `topic`,
//! `workflow_type`, `input`, `input_path`, `input_transformer`,
//! `retry_policy`, `max_concurrency`, `rate_per_second`, `timeout_seconds`).

use std::hash::{Hash, Hasher};
use std::time::Duration;

use base64::Engine;
use prost::Message;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};
use sluice_patterns::transform::Input;
use sluice_proto::v1;

use super::{CompiledTarget, Ctx, Retry, Violation, REDACTED};
use crate::address::Host;

/// Most headers an HTTP target may set.
pub const MAX_HEADERS: usize = 20;
/// Longest header value.
pub const MAX_HEADER_VALUE: usize = 4096;
/// Largest constant input.
pub const MAX_INPUT: usize = 8192;
/// Longest secret.
pub const MAX_SECRET: usize = 4096;
/// EventBridge's defaults and bounds.
pub const DEFAULT_RETRIES: u32 = 185;
/// Most retries.
pub const MAX_RETRIES: u32 = 185;
/// Default and largest maximum event age.
pub const MAX_AGE_SECONDS: u32 = 86_400;
/// Smallest maximum event age.
pub const MIN_AGE_SECONDS: u32 = 60;
/// Default attempt timeout.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 10;
/// Longest attempt timeout.
pub const MAX_TIMEOUT_SECONDS: u32 = 60;
/// Most concurrent deliveries a target may ask for.
pub const MAX_CONCURRENCY: u32 = 1000;
/// Highest rate a target may ask for.
pub const MAX_RATE: f64 = 10_000.0;
/// Lowest rate (one delivery every 100 s).
pub const MIN_RATE: f64 = 0.01;

/// Headers a target may not set: hop-by-hop and framing headers, the ones
/// sluice sets itself, and credentials (they go in `auth`, which is
/// write-only).
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "authorization",
    "proxy-authorization",
    "proxy-connection",
    "traceparent",
    "tracestate",
];

/// Where a target's deliveries go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// An HTTP endpoint.
    Http(Box<Http>),
    /// A sluice queue.
    Queue(String),
    /// A notifier topic.
    Topic(String),
    /// A workflow type of the orchestrator.
    Workflow(String),
    /// A Kafka topic.
    Kafka(Kafka),
}

/// A Kafka target.
#[derive(Debug, Clone)]
pub struct Kafka {
    /// The topic.
    pub topic: String,
    /// Where the record's key is in the event.
    pub key: Option<sluice_patterns::transform::JsonPath>,
}

/// Checks a Kafka topic name (Kafka's rule: 1 to 249 of `A-Z a-z 0-9 . _ -`, not `.` or `..`).
pub fn check_kafka_topic(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err("a Kafka topic is 1 to 249 of A-Z a-z 0-9 . _ -, and not . or ..".into())
    }
}

impl Destination {
    /// Its kind, as a bounded metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http(_) => "http",
            Self::Queue(_) => "queue",
            Self::Topic(_) => "topic",
            Self::Workflow(_) => "workflow",
            Self::Kafka(_) => "kafka",
        }
    }
}

/// An HTTP target.
#[derive(Debug, Clone)]
pub struct Http {
    /// Where.
    pub url: reqwest::Url,
    /// How.
    pub method: reqwest::Method,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Credentials.
    pub auth: Auth,
}

/// An HTTP target's credentials.
#[derive(Debug, Clone)]
pub enum Auth {
    /// None.
    None,
    /// A fixed header (an API key, or basic credentials as `Authorization`).
    Header(HeaderName, HeaderValue),
    /// OAuth 2.0 client credentials.
    OAuth(OAuth),
}

/// OAuth 2.0 client credentials.
#[derive(Debug, Clone)]
pub struct OAuth {
    /// Token endpoint.
    pub token_url: reqwest::Url,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Requested scope, if any.
    pub scope: Option<String>,
}

/// What a target receives.
#[derive(Debug, Clone)]
pub enum InputSpec {
    /// The whole event.
    Event,
    /// A constant JSON text.
    Constant(String),
    /// An InputPath or InputTransformer.
    Transform(Input),
}

fn v(at: &str, field: &str, message: impl Into<String>) -> Violation {
    Violation::new(format!("{at}/{field}"), message)
}

/// Checks an http(s) URL and its literal host against the address policy.
fn check_url(at: &str, field: &str, text: &str, ctx: &Ctx<'_>) -> Result<reqwest::Url, Violation> {
    let url = reqwest::Url::parse(text).map_err(|e| v(at, field, format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(v(at, field, "must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(v(
            at,
            field,
            "must not carry credentials; give them in `auth`",
        ));
    }
    if url.as_str().len() > 2048 {
        return Err(v(at, field, "must be at most 2048 characters"));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let host = match url.host() {
        Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Domain(d)) => Host::Name(d),
        None => return Err(v(at, field, "must name a host")),
    };
    if let Some(why) = ctx.policy.refuses(host, port) {
        return Err(v(at, field, why));
    }
    Ok(url)
}

fn check_http(at: &str, h: &v1::HttpTarget, ctx: &Ctx<'_>) -> Result<Http, Violation> {
    let url = check_url(at, "url", &h.url, ctx)?;
    let method = if h.method.is_empty() {
        reqwest::Method::POST
    } else {
        match h.method.to_ascii_uppercase().as_str() {
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => {
                reqwest::Method::from_bytes(m.as_bytes())
                    .map_err(|_| v(at, "method", "is not a method"))?
            }
            _ => {
                return Err(v(
                    at,
                    "method",
                    "must be GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
                ))
            }
        }
    };
    if h.headers.len() > MAX_HEADERS {
        return Err(v(at, "headers", format!("at most {MAX_HEADERS} headers")));
    }
    let mut headers = HeaderMap::new();
    let mut names: Vec<&String> = h.headers.keys().collect();
    names.sort();
    for name in names {
        let value = &h.headers[name];
        let field = format!("headers/{}", name.replace('~', "~0").replace('/', "~1"));
        if name.len() > 256 {
            return Err(v(
                at,
                &field,
                "a header name may have at most 256 characters",
            ));
        }
        let hn = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| v(at, &field, "is not a valid header name"))?;
        if RESERVED.contains(&hn.as_str()) || hn.as_str().starts_with("sluice-") {
            return Err(v(at, &field, "is set by sluice and cannot be set here"));
        }
        if value.len() > MAX_HEADER_VALUE {
            return Err(v(
                at,
                &field,
                format!("must be at most {MAX_HEADER_VALUE} bytes"),
            ));
        }
        let hv = HeaderValue::from_str(value)
            .map_err(|_| v(at, &field, "is not a valid header value"))?;
        headers.insert(hn, hv);
    }
    let auth = match h.auth.as_ref().and_then(|a| a.kind.as_ref()) {
        None => Auth::None,
        Some(v1::http_auth::Kind::ApiKey(k)) => {
            if k.header.len() > 256 {
                return Err(v(at, "auth/header", "must be at most 256 characters"));
            }
            if k.value.len() > MAX_SECRET {
                return Err(v(
                    at,
                    "auth/value",
                    format!("must be at most {MAX_SECRET} bytes"),
                ));
            }
            let hn = HeaderName::from_bytes(k.header.as_bytes())
                .map_err(|_| v(at, "auth/header", "is not a valid header name"))?;
            if RESERVED.contains(&hn.as_str()) || hn.as_str().starts_with("sluice-") {
                return Err(v(
                    at,
                    "auth/header",
                    "is set by sluice and cannot be set here",
                ));
            }
            if k.value.is_empty() {
                return Err(v(at, "auth/value", "is required"));
            }
            let hv = HeaderValue::from_str(&k.value)
                .map_err(|_| v(at, "auth/value", "is not a valid header value"))?;
            Auth::Header(hn, hv)
        }
        Some(v1::http_auth::Kind::Basic(b)) => {
            if b.username.len() > 512 || b.password.len() > 512 {
                return Err(v(
                    at,
                    "auth",
                    "username and password must be at most 512 bytes each",
                ));
            }
            if b.username.is_empty() || b.username.contains(':') {
                return Err(v(
                    at,
                    "auth/username",
                    "is required and may not contain ':'",
                ));
            }
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", b.username, b.password));
            let hv = HeaderValue::from_str(&format!("Basic {token}"))
                .map_err(|_| v(at, "auth/password", "is not valid"))?;
            Auth::Header(reqwest::header::AUTHORIZATION, hv)
        }
        Some(v1::http_auth::Kind::OauthClientCredentials(o)) => {
            if o.client_id.len() > 512 || o.client_secret.len() > MAX_SECRET || o.scope.len() > 1024
            {
                return Err(v(
                    at,
                    "auth",
                    format!("client_id may have 512 bytes, client_secret {MAX_SECRET}, scope 1024"),
                ));
            }
            let token_url = check_url(at, "auth/token_url", &o.token_url, ctx)?;
            if o.client_id.is_empty() {
                return Err(v(at, "auth/client_id", "is required"));
            }
            if o.client_secret.is_empty() {
                return Err(v(at, "auth/client_secret", "is required"));
            }
            Auth::OAuth(OAuth {
                token_url,
                client_id: o.client_id.clone(),
                client_secret: o.client_secret.clone(),
                scope: (!o.scope.is_empty()).then(|| o.scope.clone()),
            })
        }
    };
    if let Auth::Header(name, _) = &auth {
        if headers.contains_key(name) {
            return Err(v(
                at,
                "auth",
                format!("sets {name}, which `headers` sets too"),
            ));
        }
    }
    Ok(Http {
        url,
        method,
        headers,
        auth,
    })
}

/// Maps an input transformer's pointer (`/InputTemplate`) to the REST field.
fn transformer_pointer(at: &str, inner: &str) -> String {
    let inner = inner
        .replacen("/InputPathsMap", "/input_paths_map", 1)
        .replacen("/InputTemplate", "/input_template", 1);
    format!("{at}/input_transformer{inner}")
}

fn check_input(at: &str, t: &v1::Target) -> Result<InputSpec, Violation> {
    use v1::target::Input as I;
    Ok(match &t.input {
        None => InputSpec::Event,
        Some(I::InputJson(text)) => {
            if text.len() > MAX_INPUT {
                return Err(v(at, "input", format!("must be at most {MAX_INPUT} bytes")));
            }
            serde_json::from_str::<Value>(text)
                .map_err(|e| v(at, "input", format!("is not JSON: {e}")))?;
            InputSpec::Constant(text.clone())
        }
        Some(I::InputPath(path)) => InputSpec::Transform(
            Input::parse(&json!({ "InputPath": path }))
                .map_err(|e| v(at, "input_path", e.message))?,
        ),
        Some(I::InputTransformer(tr)) => {
            let map: serde_json::Map<String, Value> = tr
                .input_paths_map
                .iter()
                .map(|(k, p)| (k.clone(), Value::String(p.clone())))
                .collect();
            InputSpec::Transform(
                Input::parse(&json!({
                    "InputPathsMap": map,
                    "InputTemplate": tr.input_template,
                }))
                .map_err(|e| Violation::new(transformer_pointer(at, &e.pointer), e.message))?,
            )
        }
    })
}

/// Checks and compiles target `t` of rule `rule` on `bus`; pointers are under `at`.
pub fn compile_target(
    bus: &str,
    rule: &str,
    t: &v1::Target,
    at: &str,
    ctx: &Ctx<'_>,
) -> Result<CompiledTarget, Violation> {
    use sluice_model::names;
    names::check_target_id(&t.id).map_err(|e| v(at, "id", e))?;
    if let Some(field) = redacted_field(t) {
        return Err(v(
            at,
            field,
            "a stored secret is kept only for the same target, URL and credentials; give the secret again",
        ));
    }
    let mut timeout = Duration::from_secs(u64::from(DEFAULT_TIMEOUT_SECONDS));
    let destination = match &t.destination {
        None => {
            return Err(v(
                at,
                "type",
                "is required: http, queue, topic, workflow or kafka",
            ))
        }
        Some(v1::target::Destination::Http(h)) => {
            if let Some(s) = h.timeout_seconds {
                if !(1..=MAX_TIMEOUT_SECONDS).contains(&s) {
                    return Err(v(
                        at,
                        "timeout_seconds",
                        format!("must be 1 to {MAX_TIMEOUT_SECONDS}"),
                    ));
                }
                timeout = Duration::from_secs(u64::from(s));
            }
            Destination::Http(Box::new(check_http(at, h, ctx)?))
        }
        Some(v1::target::Destination::Queue(q)) => {
            names::check_queue(&q.queue).map_err(|e| v(at, "queue", e))?;
            Destination::Queue(q.queue.clone())
        }
        Some(v1::target::Destination::Topic(tp)) => {
            names::check_topic(&tp.topic).map_err(|e| v(at, "topic", e))?;
            Destination::Topic(tp.topic.clone())
        }
        Some(v1::target::Destination::Workflow(w)) => {
            names::check_workflow_type(&w.workflow_type).map_err(|e| v(at, "workflow_type", e))?;
            Destination::Workflow(w.workflow_type.clone())
        }
        Some(v1::target::Destination::Kafka(k)) => {
            check_kafka_topic(&k.topic).map_err(|e| v(at, "topic", e))?;
            let key = if k.key_path.is_empty() {
                None
            } else {
                Some(
                    sluice_patterns::transform::JsonPath::parse(&k.key_path)
                        .map_err(|e| v(at, "key_path", e))?,
                )
            };
            Destination::Kafka(Kafka {
                topic: k.topic.clone(),
                key,
            })
        }
    };
    let input = check_input(at, t)?;
    let policy = t.retry_policy.unwrap_or_default();
    let max_retries = policy.maximum_retry_attempts.unwrap_or(DEFAULT_RETRIES);
    if max_retries > MAX_RETRIES {
        return Err(v(
            at,
            "retry_policy/maximum_retry_attempts",
            format!("must be 0 to {MAX_RETRIES}"),
        ));
    }
    let age = policy.maximum_event_age_seconds.unwrap_or(MAX_AGE_SECONDS);
    if !(MIN_AGE_SECONDS..=MAX_AGE_SECONDS).contains(&age) {
        return Err(v(
            at,
            "retry_policy/maximum_event_age_seconds",
            format!("must be {MIN_AGE_SECONDS} to {MAX_AGE_SECONDS}"),
        ));
    }
    let max_concurrency = t.max_concurrency.unwrap_or(ctx.default_concurrency);
    if !(1..=MAX_CONCURRENCY).contains(&max_concurrency) {
        return Err(v(
            at,
            "max_concurrency",
            format!("must be 1 to {MAX_CONCURRENCY}"),
        ));
    }
    if let Some(r) = t.rate_per_second {
        if !r.is_finite() || !(MIN_RATE..=MAX_RATE).contains(&r) {
            return Err(v(
                at,
                "rate_per_second",
                format!("must be {MIN_RATE} to {MAX_RATE}"),
            ));
        }
    }
    let ordering = if t.ordering_key.is_empty() {
        None
    } else {
        Some(
            sluice_patterns::transform::JsonPath::parse(&t.ordering_key)
                .map_err(|e| v(at, "ordering_key", e))?,
        )
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    t.encode_to_vec().hash(&mut hasher);
    max_concurrency.hash(&mut hasher);
    Ok(CompiledTarget {
        key: sluice_bus::subjects::target_key(bus, rule, &t.id),
        bus: bus.to_string(),
        rule: rule.to_string(),
        id: t.id.clone(),
        destination,
        input,
        retry: Retry {
            max_retries,
            max_age: Duration::from_secs(u64::from(age)),
        },
        max_concurrency,
        rate_per_second: t.rate_per_second,
        timeout,
        ordering,
        fingerprint: hasher.finish(),
    })
}

fn secrets(t: &mut v1::Target) -> Vec<&mut String> {
    let Some(v1::target::Destination::Http(h)) = t.destination.as_mut() else {
        return Vec::new();
    };
    match h.auth.as_mut().and_then(|a| a.kind.as_mut()) {
        Some(v1::http_auth::Kind::ApiKey(k)) => vec![&mut k.value],
        Some(v1::http_auth::Kind::Basic(b)) => vec![&mut b.password],
        Some(v1::http_auth::Kind::OauthClientCredentials(o)) => vec![&mut o.client_secret],
        None => Vec::new(),
    }
}

/// Replaces the target's secrets with [`super::REDACTED`].
pub(super) fn redact(t: &mut v1::Target) {
    for s in secrets(t) {
        if !s.is_empty() {
            *s = REDACTED.to_string();
        }
    }
}

/// Where a target's secret goes and what else identifies it: the URL and
/// every credential field but the secret itself.
fn secret_context(t: &v1::Target) -> Option<Vec<String>> {
    let Some(v1::target::Destination::Http(h)) = &t.destination else {
        return None;
    };
    let auth = h.auth.as_ref().and_then(|a| a.kind.as_ref())?;
    let mut ctx = vec![h.url.clone()];
    match auth {
        v1::http_auth::Kind::ApiKey(k) => {
            ctx.extend(["api_key".into(), k.header.to_ascii_lowercase()])
        }
        v1::http_auth::Kind::Basic(b) => ctx.extend(["basic".into(), b.username.clone()]),
        v1::http_auth::Kind::OauthClientCredentials(o) => ctx.extend([
            "oauth".into(),
            o.token_url.clone(),
            o.client_id.clone(),
            o.scope.clone(),
        ]),
    }
    Some(ctx)
}

/// The field of a secret still given as [`super::REDACTED`], if any.
fn redacted_field(t: &v1::Target) -> Option<&'static str> {
    let Some(v1::target::Destination::Http(h)) = &t.destination else {
        return None;
    };
    match h.auth.as_ref().and_then(|a| a.kind.as_ref())? {
        v1::http_auth::Kind::ApiKey(k) if k.value == REDACTED => Some("auth/value"),
        v1::http_auth::Kind::Basic(b) if b.password == REDACTED => Some("auth/password"),
        v1::http_auth::Kind::OauthClientCredentials(o) if o.client_secret == REDACTED => {
            Some("auth/client_secret")
        }
        _ => None,
    }
}

/// A target written back as it was read keeps its stored secrets: a secret
/// given as [`super::REDACTED`] takes the value `old` has in the same place,
/// but only if the URL and every other credential field are unchanged, so a
/// stored secret can never be sent somewhere new.
pub fn keep_secrets(new: &mut v1::Target, old: Option<&v1::Target>) {
    let Some(old) = old else { return };
    match (secret_context(new), secret_context(old)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return,
    }
    let mut old = old.clone();
    let old_secrets = secrets(&mut old);
    let new_secrets = secrets(new);
    if old_secrets.len() != new_secrets.len() {
        return;
    }
    for (n, o) in new_secrets.into_iter().zip(old_secrets) {
        if n == REDACTED {
            *n = o.clone();
        }
    }
}
