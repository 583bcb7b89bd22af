//! Webhooks (`http` and `https` subscriptions): one signed POST per
//! delivery.
//!
//! Every request is signed as the Standard Webhooks specification says:
//! `webhook-id` (the delivery's id, the same on every retry),
//! `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature`, `v1,` and the base64 HMAC-SHA256 of
//! `<id>.<timestamp>.<body>` keyed with the subscription's secret
//! (`whsec_` and base64 of the key). While a rotation overlaps, the
//! signatures with the new and the previous secret are both sent,
//! separated by a space, so a receiver holding either accepts it.
//!
//! 2xx is success; 429, 408, 5xx, timeouts and connection errors are
//! retried; any other status is terminal (the dead-letter queue keeps the
//! response). Redirects are not followed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use sha2::Sha256;
use sluice_outbound::http::{answered, failed, refused};
use sluice_outbound::retry::Outcome;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::subscriptions::Compiled;
use crate::State;

/// Prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new random secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` value for `body` sent as message `id` at
/// `timestamp`, one `v1,` signature per secret. Secrets that cannot be
/// decoded are skipped (they were made by [`new_secret`], so none are).
pub fn signature(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| {
            STANDARD
                .decode(s.strip_prefix(SECRET_PREFIX).unwrap_or(s))
                .ok()
        })
        .filter_map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The secrets that sign now: the current one, and the previous one until
/// its overlap ends.
pub fn signing_secrets(sub: &sluice_proto::v1::Subscription, now: OffsetDateTime) -> Vec<&str> {
    let mut out = vec![sub.signing_secret.as_str()];
    if !sub.previous_signing_secret.is_empty() {
        let live = OffsetDateTime::parse(&sub.previous_secret_expires_at, &Rfc3339)
            .map(|until| now < until)
            .unwrap_or(false);
        if live {
            out.push(sub.previous_signing_secret.as_str());
        }
    }
    out
}

/// One delivery, as the worker hands it over.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// Stable across retries: the `webhook-id`.
    pub id: &'a str,
    /// `Notification` or `SubscriptionConfirmation`.
    pub kind: &'a str,
    /// The body.
    pub body: Bytes,
    /// Its content type.
    pub content_type: &'static str,
    /// Attempt number, 1-based.
    pub attempt: u32,
    /// The topic message's id, for notifications.
    pub message_id: Option<&'a str>,
}

/// Posts one delivery to the subscription's URL.
pub async fn send(state: &State, sub: &Compiled, d: &Delivery<'_>) -> Outcome {
    let url = match reqwest::Url::parse(&sub.spec.endpoint) {
        Ok(u) => u,
        Err(e) => {
            return Outcome::Terminal {
                reason: format!("the endpoint is not a URL: {e}"),
                response: None,
            }
        }
    };
    if let Some(why) = refused(&state.policy, &url).await {
        return Outcome::Terminal {
            reason: why,
            response: None,
        };
    }
    let now = OffsetDateTime::now_utc();
    let ts = now.unix_timestamp();
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("webhook-id", d.id);
    put("webhook-timestamp", &ts.to_string());
    put(
        "webhook-signature",
        &signature(&signing_secrets(&sub.spec, now), d.id, ts, &d.body),
    );
    put("sluice-message-type", d.kind);
    put("sluice-topic-arn", &state.config.topic_arn(&sub.spec.topic));
    put("sluice-subscription-id", &sub.spec.subscription_id);
    put("sluice-attempt", &d.attempt.to_string());
    if let Some(m) = d.message_id {
        put("sluice-message-id", m);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(d.content_type));
    sluice_telemetry::http_inject(&mut headers);
    let timeout = sub.timeout(&state.config.delivery);
    match state
        .http
        .post(url)
        .timeout(timeout)
        .headers(headers)
        .body(d.body.clone())
        .send()
        .await
    {
        Ok(resp) => answered(resp).await,
        Err(e) => failed(&e, timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The specification's published example.
        let sig = signature(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_until_the_overlap_ends() {
        let now = OffsetDateTime::now_utc();
        let mut sub = sluice_proto::v1::Subscription {
            signing_secret: new_secret(),
            previous_signing_secret: new_secret(),
            previous_secret_expires_at: (now + time::Duration::hours(1)).format(&Rfc3339).unwrap(),
            ..Default::default()
        };
        let both = signing_secrets(&sub, now);
        assert_eq!(both.len(), 2);
        let sig = signature(&both, "id", 1, b"x");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
        sub.previous_secret_expires_at =
            (now - time::Duration::seconds(1)).format(&Rfc3339).unwrap();
        assert_eq!(
            signing_secrets(&sub, now),
            vec![sub.signing_secret.as_str()]
        );
        assert!(new_secret().starts_with(SECRET_PREFIX));
        assert_ne!(new_secret(), new_secret());
    }
}
