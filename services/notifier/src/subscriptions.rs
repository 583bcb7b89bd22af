//! What a subscription is: checked when it is made, and matched against
//! each message (its SNS filter policy, in either scope).

use serde_json::Value;
use sluice_model::topic::TopicMessage;
use sluice_patterns::sns::{FilterPolicy, Scope};
use sluice_proto::v1;
use sluice_runtime::grpc::Violation;

/// Protocols served today.
pub const PROTOCOLS: &[&str] = &["queue"];
/// Protocols of the SNS contract not yet served.
pub const LATER: &[&str] = &["email", "email-json", "https"];

/// Checks a subscription request; returns the filter policy compiled.
pub fn check(sub: &v1::Subscription) -> Result<Option<FilterPolicy>, Violation> {
    if !PROTOCOLS.contains(&sub.protocol.as_str()) {
        let why = if LATER.contains(&sub.protocol.as_str()) {
            format!("{:?} is not served yet; use \"queue\"", sub.protocol)
        } else {
            format!("must be one of {PROTOCOLS:?}")
        };
        return Err(Violation::new("/protocol", why));
    }
    if sub.protocol == "queue" {
        sluice_model::names::check_queue(&sub.endpoint)
            .map_err(|e| Violation::new("/endpoint", e))?;
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
}

impl Compiled {
    /// Compiles a stored subscription's filter policy. Only the policy is
    /// compiled again, not every rule of a new request, so a stored
    /// subscription keeps working when request checks tighten.
    pub fn new(spec: v1::Subscription) -> Result<Self, String> {
        if spec.filter_policy.is_empty() {
            return Ok(Self { spec, policy: None });
        }
        let scope = scope_of(&spec.filter_policy_scope).map_err(|v| v.to_string())?;
        let policy: Value = serde_json::from_str(&spec.filter_policy).map_err(|e| e.to_string())?;
        let policy = FilterPolicy::parse(&policy, scope).map_err(|e| e.message)?;
        Ok(Self {
            spec,
            policy: Some(policy),
        })
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
        for (s, pointer) in [
            (sub("sms", "q", "", ""), "/protocol"),
            (sub("https", "https://x", "", ""), "/protocol"),
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
}
