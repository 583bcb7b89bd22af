//! Settling a delivery after an attempt, the same way for rule targets
//! and subscriptions: ack when delivered, `Nak(delay)` while the retry
//! policy allows, otherwise the dead-letter queue (reason, attempts, last
//! response, the original) and then ack. A dead letter that cannot be
//! written leaves the delivery to be tried again in a second.

use std::time::Duration;

use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::Message;
use sluice_bus::dlq::Failure;
use sluice_bus::Bus;
use sluice_outbound::retry::{Decision, Outcome};
use time::OffsetDateTime;

/// What JetStream says of a pulled delivery.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Attempt number, 1-based.
    pub attempt: u32,
    /// When it was stored.
    pub published: OffsetDateTime,
    /// Its stream.
    pub stream: String,
    /// Its sequence there.
    pub seq: u64,
}

/// The delivery's JetStream metadata; a message without any is
/// terminated (it cannot be retried or dead-lettered by sequence) and
/// `None` returned.
pub async fn facts(msg: &Message) -> Option<Facts> {
    match msg.info() {
        Ok(i) => Some(Facts {
            attempt: u32::try_from(i.delivered).unwrap_or(u32::MAX),
            published: i.published,
            stream: i.stream.to_string(),
            seq: i.stream_sequence,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "delivery without JetStream metadata; terminated");
            let _ = msg.ack_with(AckKind::Term).await;
            None
        }
    }
}

/// The delivery being settled.
#[derive(Debug)]
pub struct Attempted<'a> {
    /// The message as pulled.
    pub msg: &'a Message,
    /// Its subject without the prefix (`deliver.<key>`): where a redrive puts it back.
    pub subject: &'a str,
    /// Where it goes if dead-lettered.
    pub dlq_subject: &'a str,
    /// The stable delivery id.
    pub id: &'a str,
    /// Attempt number, 1-based.
    pub attempt: u32,
    /// When it was stored.
    pub published: OffsetDateTime,
    /// Its stream and sequence.
    pub stream: &'a str,
    /// See `stream`.
    pub seq: u64,
}

/// Settles `a` as `decision` says, after `outcome`. Returns the metric
/// label: `delivered`, `retried` or `dead_lettered`.
pub async fn settle(
    bus: &Bus,
    a: &Attempted<'_>,
    outcome: &Outcome,
    decision: Decision,
) -> &'static str {
    let msg = a.msg;
    match decision {
        Decision::Done => {
            if let Err(e) = msg.double_ack().await {
                tracing::warn!(error = %e, "ack not confirmed; the endpoint may see this delivery again (same delivery id)");
            }
            "delivered"
        }
        Decision::RetryAfter(d) => {
            let reason = match outcome {
                Outcome::Retry { reason, .. } => reason.as_str(),
                _ => "",
            };
            tracing::warn!(%reason, retry_in_ms = d.as_millis() as u64, "delivery failed; will retry");
            if let Err(e) = msg.ack_with(AckKind::Nak(Some(d))).await {
                tracing::warn!(error = %e, "nak failed; redelivery after the ack wait");
            }
            "retried"
        }
        Decision::DeadLetter { reason, terminal } => {
            let response = match outcome {
                Outcome::Retry { response, .. } | Outcome::Terminal { response, .. } => {
                    response.clone()
                }
                Outcome::Delivered => None,
            };
            tracing::error!(%reason, terminal, "dead-lettering the delivery");
            let failure = Failure {
                subject: a.subject,
                msg_id: a.id,
                payload: &msg.payload,
                headers: msg.headers.as_ref(),
                reason: &reason,
                attempts: a.attempt,
                terminal,
                accepted_at: a.published,
                source_stream: a.stream,
                source_seq: a.seq,
                last_response: response.as_deref(),
            };
            match bus.dead_letter_to(a.dlq_subject, &failure).await {
                Ok(()) => {
                    let _ = msg.double_ack().await;
                    "dead_lettered"
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot dead-letter; will retry");
                    let _ = msg
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                    "retried"
                }
            }
        }
    }
}
