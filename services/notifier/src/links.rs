//! The links sent to subscribers: confirm a subscription, stop one. Both
//! point at the gateway (`SLUICE_PUBLIC_URL`) and carry the subscription's
//! token, which is all they need: the recipient has no API key.

use sluice_proto::v1;

use crate::State;

fn link(state: &State, sub: &v1::Subscription, action: &str) -> String {
    state.config.link(
        &format!(
            "/v1/topics/{}/subscriptions/{}/{action}",
            sub.topic, sub.subscription_id
        ),
        &[("token", sub.token.as_str())],
    )
}

/// Opening it confirms the subscription.
pub fn confirm(state: &State, sub: &v1::Subscription) -> String {
    link(state, sub, "confirm")
}

/// Opening it (or POSTing to it) removes the subscription.
pub fn unsubscribe(state: &State, sub: &v1::Subscription) -> String {
    link(state, sub, "unsubscribe")
}

/// The body of the confirmation request an http(s) endpoint receives.
pub fn confirmation(state: &State, sub: &v1::Subscription) -> String {
    serde_json::json!({
        "type": "SubscriptionConfirmation",
        "subscription_id": sub.subscription_id,
        "topic": sub.topic,
        "topic_arn": state.config.topic_arn(&sub.topic),
        "confirm_url": confirm(state, sub),
        "message": format!(
            "You were subscribed to the topic {}. To confirm and start receiving its messages, GET confirm_url.",
            sub.topic
        ),
        "timestamp": crate::fanout::sns_timestamp(time::OffsetDateTime::now_utc()),
    })
    .to_string()
}
