//! What is published on `notify.<topic>`: the contract between whoever
//! publishes to a topic (the transformer's `topic` targets, the topic
//! publish API) and the notifier that fans it out to subscriptions.
//!
//! The NATS message carries `Nats-Msg-Id` (the publish's stable id, which
//! becomes the SNS `MessageId`), the W3C trace context, and this JSON body.

use serde::{Deserialize, Serialize};

/// One message published to a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMessage {
    /// The message: text, often JSON (for a rule's target, the target's input).
    pub message: String,
    /// Optional subject (email subject line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// SNS message attributes: name → `{"Type": ..., "Value": ...}`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub message_attributes: serde_json::Map<String, serde_json::Value>,
    /// Who published it, e.g. `rule/default/orders/target/notify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_message_is_just_its_text() {
        let m = TopicMessage {
            message: "hi".into(),
            subject: None,
            message_attributes: Default::default(),
            origin: None,
        };
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"message":"hi"}"#);
        let back: TopicMessage = serde_json::from_str(r#"{"message":"hi"}"#).unwrap();
        assert_eq!(back, m);
    }
}
