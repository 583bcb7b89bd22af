//! What a subscription is: checked when it is made, and matched against
//! each message (its SNS filter policy, in either scope).

use std::time::Duration;

use serde_json::Value;
use sluice_model::topic::TopicMessage;
use sluice_outbound::address::{Host, Policy};
use sluice_outbound::retry::Retry;
use sluice_patterns::sns::{FilterPolicy, Scope};
use sluice_proto::v1;
use sluice_runtime::grpc::Violation;

use crate::config::DeliveryDefaults;

/// Protocols served.
pub const PROTOCOLS: &[&str] = &["queue", "http", "https", "email", "email-json"];
/// Longest webhook URL.
pub const MAX_URL: usize = 2048;

/// Whether `protocol` is delivered by the notifier itself (one consumer
/// per subscription), rather than copied into a sluice queue.
pub fn delivered(protocol: &str) -> bool {
    matches!(protocol, "http" | "https" | "email" | "email-json")
}

/// Whether `protocol` is email.
pub fn is_email(protocol: &str) -> bool {
    matches!(protocol, "email" | "email-json")
}

/// What a request is checked against besides itself.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'a> {
    /// Which addresses webhooks may reach.
    pub policy: &'a Policy,
    /// Whether an SMTP server is configured.
    pub email: bool,
}

/// Checks a subscription request; returns the filter policy compiled.
pub fn check(
    sub: &v1::Subscription,
    checks: Checks<'_>,
) -> Result<Option<FilterPolicy>, Violation> {
    if !PROTOCOLS.contains(&sub.protocol.as_str()) {
        return Err(Violation::new(
            "/protocol",
            format!("must be one of {PROTOCOLS:?}"),
        ));
    }
    let endpoint = |why: String| Violation::new("/endpoint", why);
    match sub.protocol.as_str() {
        "queue" => {
            sluice_model::names::check_queue(&sub.endpoint).map_err(|e| endpoint(e.to_string()))?
        }
        "http" | "https" => {
            if sub.endpoint.len() > MAX_URL {
                return Err(endpoint(format!("must be at most {MAX_URL} characters")));
            }
            let url = url::Url::parse(&sub.endpoint)
                .map_err(|e| endpoint(format!("is not a URL: {e}")))?;
            if url.scheme() != sub.protocol {
                return Err(endpoint(format!(
                    "must be an {}:// URL for protocol {:?}",
                    sub.protocol, sub.protocol
                )));
            }
            let host = match url.host() {
                Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
                Some(url::Host::Ipv6(ip)) => Host::Ip(ip.into()),
                Some(url::Host::Domain(d)) => Host::Name(d),
                None => return Err(endpoint("has no host".into())),
            };
            let port = url.port_or_known_default().unwrap_or(443);
            if let Some(why) = checks.policy.refuses(host, port) {
                return Err(endpoint(why));
            }
        }
        _ => {
            if !checks.email {
                return Err(Violation::new(
                    "/protocol",
                    "email is not set up on this notifier (SLUICE_SMTP_URL)",
                ));
            }
            if sub.endpoint.len() > 254 || sub.endpoint.parse::<lettre::Address>().is_err() {
                return Err(endpoint("is not an email address".into()));
            }
            if sub.raw_message_delivery {
                return Err(Violation::new(
                    "/raw_message_delivery",
                    "is only for queue, http and https subscriptions",
                ));
            }
        }
    }
    if let Some(p) = &sub.delivery_policy {
        check_delivery_policy(p)?;
    }
    let scope = scope_of(&sub.filter_policy_scope)?;
    if sub.filter_policy.is_empty() {
        return Ok(None);
    }
    let policy: Value = serde_json::from_str(&sub.filter_policy)
        .map_err(|e| Violation::new("/filter_policy", format!("is not JSON: {e}")))?;
    FilterPolicy::parse(&policy, scope)
        .map(Some)
        .map_err(|e| Violation::new(format!("/filter_policy{}", e.pointer), e.message))
}

/// Checks a delivery policy's bounds (a subscription's, or a topic's
/// defaults), naming the field under `/delivery_policy`.
pub fn check_delivery_policy(p: &v1::DeliveryPolicy) -> Result<(), Violation> {
    let range = |field: &str, v: Option<u32>, lo: u32, hi: u32| match v {
        Some(v) if !(lo..=hi).contains(&v) => Err(Violation::new(
            format!("/delivery_policy/{field}"),
            format!("must be {lo} to {hi}"),
        )),
        _ => Ok(()),
    };
    range("max_retries", p.max_retries, 0, 100)?;
    range("max_age_seconds", p.max_age_seconds, 60, 1_209_600)?;
    range("max_concurrency", p.max_concurrency, 1, 1000)?;
    range("timeout_seconds", p.timeout_seconds, 1, 60)
}

fn scope_of(text: &str) -> Result<Scope, Violation> {
    if text.is_empty() {
        return Ok(Scope::MessageAttributes);
    }
    Scope::parse(text).ok_or_else(|| {
        Violation::new(
            "/filter_policy_scope",
            "must be MessageAttributes or MessageBody",
        )
    })
}

/// A stored subscription, ready to match.
#[derive(Debug)]
pub struct Compiled {
    /// As stored.
    pub spec: v1::Subscription,
    /// Its filter policy, if any.
    pub policy: Option<FilterPolicy>,
    /// Its topic's delivery policy: what the subscription's own leaves unset.
    pub topic_policy: v1::DeliveryPolicy,
}

impl Compiled {
    /// Compiles a stored subscription's filter policy. Only the policy is
    /// compiled again, not every rule of a new request, so a stored
    /// subscription keeps working when request checks tighten.
    pub fn new(spec: v1::Subscription) -> Result<Self, String> {
        if spec.filter_policy.is_empty() {
            return Ok(Self {
                spec,
                policy: None,
                topic_policy: Default::default(),
            });
        }
        let scope = scope_of(&spec.filter_policy_scope).map_err(|v| v.to_string())?;
        let policy: Value = serde_json::from_str(&spec.filter_policy).map_err(|e| e.to_string())?;
        let policy = FilterPolicy::parse(&policy, scope).map_err(|e| e.message)?;
        Ok(Self {
            spec,
            policy: Some(policy),
            topic_policy: Default::default(),
        })
    }

    /// With its topic's delivery policy as the default of its own.
    pub fn with_topic_policy(self, topic_policy: v1::DeliveryPolicy) -> Self {
        Self {
            topic_policy,
            ..self
        }
    }

    /// The subscription's delivery policy, its unset fields taken from the
    /// topic's.
    pub fn policy_in_force(&self) -> v1::DeliveryPolicy {
        let own = self.spec.delivery_policy.unwrap_or_default();
        let topic = self.topic_policy;
        v1::DeliveryPolicy {
            max_retries: own.max_retries.or(topic.max_retries),
            max_age_seconds: own.max_age_seconds.or(topic.max_age_seconds),
            max_concurrency: own.max_concurrency.or(topic.max_concurrency),
            timeout_seconds: own.timeout_seconds.or(topic.timeout_seconds),
        }
    }

    /// The retry policy: the subscription's, then the topic's, then the
    /// notifier's defaults.
    pub fn retry(&self, d: &DeliveryDefaults) -> Retry {
        let p = self.policy_in_force();
        Retry {
            max_retries: p.max_retries.unwrap_or(d.max_retries),
            max_age: p
                .max_age_seconds
                .map(|s| Duration::from_secs(u64::from(s)))
                .unwrap_or(d.max_age),
        }
    }

    /// Deliveries in flight at once (per replica).
    pub fn concurrency(&self, d: &DeliveryDefaults) -> u32 {
        self.policy_in_force()
            .max_concurrency
            .unwrap_or(d.max_concurrency)
            .max(1)
    }

    /// How long one attempt may take.
    pub fn timeout(&self, d: &DeliveryDefaults) -> Duration {
        self.policy_in_force()
            .timeout_seconds
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(d.timeout)
    }

    /// Whether `message` goes to this subscription.
    pub fn wants(&self, message: &TopicMessage) -> bool {
        let Some(policy) = &self.policy else {
            return true;
        };
        let subject = match policy.scope() {
            Scope::MessageAttributes => Value::Object(message.message_attributes.clone()),
            Scope::MessageBody => match serde_json::from_str::<Value>(&message.message) {
                Ok(v) => v,
                Err(_) => return false,
            },
        };
        match policy.matches(&subject) {
            Ok(m) => m,
            Err(e) => {
                // Attributes the publish check let through but the policy
                // cannot read: no match, and said so.
                tracing::debug!(error = %e, "a message the filter policy cannot read");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(protocol: &str, endpoint: &str, policy: &str, scope: &str) -> v1::Subscription {
        v1::Subscription {
            protocol: protocol.into(),
            endpoint: endpoint.into(),
            filter_policy: policy.into(),
            filter_policy_scope: scope.into(),
            ..Default::default()
        }
    }

    #[test]
    fn requests_are_checked_naming_the_field() {
        let policy = sluice_outbound::address::service_policy(&[], vec![], &[]);
        let checks = Checks {
            policy: &policy,
            email: true,
        };
        let check = |s: &v1::Subscription| check(s, checks);
        let mut raw_email = sub("email", "a@example.com", "", "");
        raw_email.raw_message_delivery = true;
        let mut slow = sub("https", "https://example.com/h", "", "");
        slow.delivery_policy = Some(v1::DeliveryPolicy {
            timeout_seconds: Some(61),
            ..Default::default()
        });
        for (s, pointer) in [
            (sub("sms", "q", "", ""), "/protocol"),
            (sub("https", "http://example.com", "", ""), "/endpoint"),
            (sub("http", "not a url", "", ""), "/endpoint"),
            (
                sub("http", "http://169.254.169.254/latest", "", ""),
                "/endpoint",
            ),
            (sub("email", "not-an-address", "", ""), "/endpoint"),
            (raw_email, "/raw_message_delivery"),
            (slow, "/delivery_policy/timeout_seconds"),
            (sub("queue", "no spaces", "", ""), "/endpoint"),
            (sub("queue", "q", "", "Body"), "/filter_policy_scope"),
            (sub("queue", "q", "{", ""), "/filter_policy"),
            (
                sub("queue", "q", r#"{"colour": "red"}"#, ""),
                "/filter_policy/colour",
            ),
        ] {
            assert_eq!(check(&s).unwrap_err().pointer, pointer, "{s:?}");
        }
        assert!(check(&sub("queue", "q", "", "")).unwrap().is_none());
        assert!(check(&sub("https", "https://example.com/h", "", "")).is_ok());
        assert!(check(&sub("email-json", "a@example.com", "", "")).is_ok());
        let no_mail = Checks {
            policy: &policy,
            email: false,
        };
        assert_eq!(
            super::check(&sub("email", "a@example.com", "", ""), no_mail)
                .unwrap_err()
                .pointer,
            "/protocol"
        );
    }

    #[test]
    fn policies_match_in_their_scope() {
        let message = |body: &str, attrs: Value| TopicMessage {
            message: body.into(),
            subject: None,
            message_attributes: attrs.as_object().cloned().unwrap_or_default(),
            origin: None,
        };
        let on_attrs = Compiled::new(sub("queue", "q", r#"{"colour": ["red"]}"#, "")).unwrap();
        assert!(on_attrs.wants(&message(
            "x",
            serde_json::json!({"colour": {"Type": "String", "Value": "red"}})
        )));
        assert!(!on_attrs.wants(&message(
            "x",
            serde_json::json!({"colour": {"Type": "String", "Value": "blue"}})
        )));
        assert!(!on_attrs.wants(&message("x", serde_json::json!({}))));
        let on_body = Compiled::new(sub(
            "queue",
            "q",
            r#"{"order": {"total": [{"numeric": [">", 100]}]}}"#,
            "MessageBody",
        ))
        .unwrap();
        assert!(on_body.wants(&message(r#"{"order": {"total": 150}}"#, Value::Null)));
        assert!(!on_body.wants(&message(r#"{"order": {"total": 50}}"#, Value::Null)));
        assert!(!on_body.wants(&message("not json", Value::Null)));
        let all = Compiled::new(sub("queue", "q", "", "")).unwrap();
        assert!(all.wants(&message("anything", Value::Null)));
    }

    #[test]
    fn a_subscription_policy_falls_back_to_its_topic_then_the_notifier() {
        let defaults = DeliveryDefaults {
            max_retries: 10,
            max_age: Duration::from_secs(86_400),
            max_concurrency: 10,
            timeout: Duration::from_secs(15),
        };
        let mut s = sub("https", "https://example.com/h", "", "");
        s.delivery_policy = Some(v1::DeliveryPolicy {
            max_retries: Some(2),
            ..Default::default()
        });
        let c = Compiled::new(s)
            .unwrap()
            .with_topic_policy(v1::DeliveryPolicy {
                max_retries: Some(7),
                timeout_seconds: Some(3),
                ..Default::default()
            });
        assert_eq!(c.retry(&defaults).max_retries, 2, "the subscription's own");
        assert_eq!(c.timeout(&defaults), Duration::from_secs(3), "the topic's");
        assert_eq!(c.concurrency(&defaults), 10, "the notifier's");
        assert_eq!(c.retry(&defaults).max_age, Duration::from_secs(86_400));
    }
}
