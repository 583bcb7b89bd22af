//! The fan-out: every topic message (from a publish, or from a rule's
//! `topic` target) is read once from `NOTIFY` and given to each confirmed
//! subscription of its topic (as the registry knows them, see `deliver`)
//! whose filter policy it matches, as the SNS
//! notification JSON or, with raw delivery, as published (email: the
//! message text). A `queue` subscription's copy goes into its queue; an
//! http(s) or email subscription's copy waits on the subscription's own
//! delivery subject for its worker (`deliver`). The message is
//! acknowledged only when every such subscription has its copy stored;
//! otherwise it is tried again, and what a subscription already has is not
//! given twice (each copy's id is the message id and the subscription id,
//! which the stream de-duplicates).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt as _;
use serde_json::{json, Value};
use sluice_bus::dlq::Failure;
use sluice_bus::work::{keep_pulling, Pull};
use sluice_bus::{subjects, BusError};
use sluice_model::topic::TopicMessage;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::subscriptions::{delivered, Compiled};
use crate::Shared;

/// Topic messages fanned out at once.
const CONCURRENCY: usize = 64;
/// How long a message being fanned out may take before it is tried again.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// Delay before a message some subscription did not take is tried again.
const RETRY: Duration = Duration::from_secs(2);
/// Copies of one message stored at once.
const COPIES_AT_ONCE: usize = 32;

/// Fans out until `shutdown`.
pub async fn run(state: Shared, shutdown: CancellationToken) {
    // Fanning out before the subscriptions are known would give copies to
    // no one.
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = state.registry.wait_loaded() => {}
    }
    let declare = || {
        let state = state.clone();
        async move {
            let names = state.bus.names();
            state
                .bus
                .declare_consumer(
                    sluice_bus::streams::fanout_consumer(names, ACK_WAIT, 1000),
                    names.notify(),
                    "the notifier's consumer",
                )
                .await
        }
    };
    let pull = Pull {
        batch: CONCURRENCY,
        what: "topic messages",
    };
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let partitions = futures::future::join_all(
        (0..subjects::FIFO_PARTITIONS).map(|p| run_fifo(state.clone(), p, shutdown.clone())),
    );
    let standard = keep_pulling(declare, pull, slots, None, &shutdown, |msg, permit| {
        let state = state.clone();
        state.tracker.clone().spawn(async move {
            let span = fan_out_span(&msg);
            fan_out(&state, msg).instrument(span).await;
            drop(permit);
        });
    });
    tokio::join!(standard, partitions);
}

/// Fans out one FIFO partition: one message at a time, in the order stored
/// (its consumer lets one be pending across every replica), so a message
/// group's copies reach each queue in order. A message that cannot be
/// copied holds back its partition until it can.
async fn run_fifo(state: Shared, partition: u32, shutdown: CancellationToken) {
    let declare = || {
        let state = state.clone();
        async move {
            let names = state.bus.names();
            state
                .bus
                .declare_consumer(
                    sluice_bus::streams::fanout_fifo_consumer(names, partition, ACK_WAIT),
                    names.notify_fifo(),
                    "the notifier's FIFO consumer",
                )
                .await
        }
    };
    let pull = Pull {
        batch: 1,
        what: "FIFO topic messages",
    };
    let slots = Arc::new(Semaphore::new(1));
    keep_pulling(declare, pull, slots, None, &shutdown, |msg, permit| {
        let state = state.clone();
        state.tracker.clone().spawn(async move {
            let span = fan_out_span(&msg);
            fan_out(&state, msg).instrument(span).await;
            drop(permit);
        });
    })
    .await;
}

/// The span fanning out `msg`, continuing the trace of its publisher; the
/// copies carry it on to their deliveries.
fn fan_out_span(msg: &Message) -> tracing::Span {
    let span = tracing::info_span!(
        "sluice.notifier.fanout",
        otel.kind = "consumer",
        subject = %msg.subject,
        trace_id = tracing::field::Empty,
    );
    sluice_telemetry::set_parent(&span, sluice_telemetry::nats_context(msg.headers.as_ref()));
    span.record("trace_id", sluice_telemetry::trace_id_of(&span));
    span
}

/// The public id of the FIFO message stored under JetStream id `stored_id`
/// at `sequence` of NOTIFY_FIFO: the same for a repeat within the window
/// (JetStream answers the original's sequence), another for the same
/// de-duplication id after it.
pub fn fifo_message_id(stored_id: &str, sequence: u64) -> String {
    sluice_model::ids::derive_id(&format!("{stored_id}/{sequence}"), "fifo-message-id")
}

/// The SNS notification JSON.
pub fn envelope(
    topic_arn: &str,
    message_id: &str,
    message: &TopicMessage,
    published: time::OffsetDateTime,
    unsubscribe_url: Option<&str>,
    sequence_number: Option<&str>,
) -> String {
    let mut n = json!({
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic_arn,
        "Message": message.message,
        "Timestamp": sns_timestamp(published),
    });
    if let Some(seq) = sequence_number {
        n["SequenceNumber"] = Value::String(seq.to_string());
    }
    if let Some(subject) = &message.subject {
        n["Subject"] = Value::String(subject.clone());
    }
    if !message.message_attributes.is_empty() {
        n["MessageAttributes"] = Value::Object(message.message_attributes.clone());
    }
    if let Some(u) = unsubscribe_url {
        n["UnsubscribeURL"] = Value::String(u.to_string());
    }
    n.to_string()
}

/// SNS's timestamps: UTC with milliseconds, `2026-11-23T15:46:24.481Z`.
pub fn sns_timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn header<'m>(msg: &'m Message, name: &str) -> Option<&'m str> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
}

/// What a topic message is: its topic, and for a FIFO topic's its group.
enum Kind<'m> {
    Standard(&'m str),
    Fifo {
        topic: String,
        group: String,
    },
    /// A rule's `topic` target publishing to a FIFO topic: its messages
    /// join the topic's order as one group per target.
    ToFifo(&'m str),
}

fn kind_of<'m>(msg: &'m Message, subject: &'m str) -> Option<Kind<'m>> {
    if let Some(topic) = subjects::notify_topic(subject) {
        return Some(if sluice_model::names::is_fifo_topic(topic) {
            Kind::ToFifo(topic)
        } else {
            Kind::Standard(topic)
        });
    }
    if subject.starts_with("fifo.") {
        return Some(Kind::Fifo {
            topic: header(msg, sluice_bus::headers::TOPIC)?.to_string(),
            group: header(msg, sluice_bus::headers::MESSAGE_GROUP_ID)?.to_string(),
        });
    }
    None
}

async fn fan_out(state: &Shared, msg: Message) {
    let subject = state.bus.names().unprefix(&msg.subject).to_string();
    let (topic, group) = match kind_of(&msg, &subject) {
        Some(Kind::Standard(topic)) => (topic.to_string(), None),
        Some(Kind::Fifo { topic, group }) => (topic, Some(group)),
        Some(Kind::ToFifo(topic)) => {
            let topic = topic.to_string();
            return into_fifo(state, &topic, msg).await;
        }
        None => {
            tracing::warn!(%subject, "not a topic message; dropped");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let topic = topic.as_str();
    let (published, seq) = match msg.info() {
        Ok(i) => (i.published, i.stream_sequence),
        Err(e) => {
            tracing::warn!(%topic, error = %e, "a topic message without JetStream metadata; dropped");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    // A FIFO message's sequence number: its place in the FIFO stream.
    let sequence_number = group.as_ref().map(|_| seq.to_string());
    let stored_id = header(&msg, async_nats::header::NATS_MESSAGE_ID.as_ref())
        .map(str::to_string)
        .unwrap_or_else(|| format!("notify-{seq}"));
    // A FIFO message's JetStream id is its de-duplication key, which may
    // come back after the window as a new message: its id adds its place.
    let message_id = if group.is_some() {
        fifo_message_id(&stored_id, seq)
    } else {
        stored_id
    };
    let message: TopicMessage = match serde_json::from_slice(&msg.payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(%topic, error = %e, "a topic message that is not one; dropped");
            metrics::counter!("sluice.notifier.fanout", "outcome" => "undecodable").increment(1);
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    // Confirmed subscriptions of the topic, from the registry (read from
    // the store when subscriptions change, not per message).
    let snapshot = state.registry.snapshot();
    let chosen: Vec<Arc<crate::deliver::Live>> = snapshot
        .by_topic
        .get(topic)
        .map(|subs| {
            subs.iter()
                .filter(|l| l.sub.wants(&message))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let topic_arn = state.config.topic_arn(topic);
    // The copies are stored concurrently: each is its own JetStream write
    // (an fsync each, where JetStream is told to), and one after the other
    // a message to many subscriptions would wait for all of them in turn.
    let copy = |live: Arc<crate::deliver::Live>| {
        let (topic_arn, message_id, message) = (&topic_arn, &message_id, &message);
        let (group, sequence_number) = (group.as_deref(), sequence_number.as_deref());
        async move {
            let sub = &live.sub;
            let protocol = sub.spec.protocol.as_str();
            let body = if protocol == "email" || sub.spec.raw_message_delivery {
                message.message.clone()
            } else {
                let unsubscribe =
                    delivered(protocol).then(|| crate::links::unsubscribe(state, &sub.spec));
                envelope(
                    topic_arn,
                    message_id,
                    message,
                    published,
                    unsubscribe.as_deref(),
                    sequence_number,
                )
            };
            let copy_id = format!("{message_id}:{}", sub.spec.subscription_id);
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(sluice_bus::headers::TOPIC, topic);
            headers.insert(
                sluice_bus::headers::SUBSCRIPTION,
                sub.spec.subscription_id.as_str(),
            );
            headers.insert(sluice_bus::headers::MESSAGE_ID, message_id.as_str());
            // The delivery's id, kept through retries and redrives (webhook-id).
            headers.insert(sluice_bus::headers::DELIVERY_ID, copy_id.as_str());
            if let (Some(group), Some(seq)) = (group, sequence_number) {
                headers.insert(sluice_bus::headers::MESSAGE_GROUP_ID, group);
                headers.insert(sluice_bus::headers::SEQUENCE_NUMBER, seq);
            }
            // A raw delivery loses the envelope's MessageAttributes: a
            // queue keeps them beside the body, as SQS message attributes.
            if protocol == "queue"
                && sub.spec.raw_message_delivery
                && !message.message_attributes.is_empty()
            {
                let attrs = Value::Object(message.message_attributes.clone()).to_string();
                headers.insert(sluice_bus::headers::MESSAGE_ATTRIBUTES, attrs.as_str());
            }
            let outcome = if protocol == "queue" {
                to_queue(state, topic, sub, &copy_id, body, headers).await
            } else {
                headers.insert(sluice_bus::headers::MESSAGE_TYPE, "Notification");
                if let Some(subject) = &message.subject {
                    headers.insert(sluice_bus::headers::MESSAGE_SUBJECT, subject.as_str());
                }
                to_deliveries(state, topic, sub, &copy_id, body, headers, published, seq).await
            };
            metrics::counter!("sluice.notifier.fanout.copies", "protocol" => sub.spec.protocol.clone(), "outcome" => outcome)
                .increment(1);
            outcome
        }
    };
    let outcomes: Vec<&'static str> = futures::stream::iter(chosen)
        .map(copy)
        .buffer_unordered(COPIES_AT_ONCE)
        .collect()
        .await;
    let retry = outcomes.contains(&"retried");
    if retry {
        let _ = msg.ack_with(AckKind::Nak(Some(RETRY))).await;
    } else {
        if let Err(e) = msg.double_ack().await {
            tracing::warn!(error = %e, "ack not confirmed; the message may be fanned out again (copies are de-duplicated)");
        }
        metrics::counter!("sluice.notifier.fanout", "outcome" => "done").increment(1);
    }
}

/// A rule's message to a FIFO topic, moved into the topic's order: one
/// group per rule target (the message's origin), its id (the delivery id,
/// the same on every retry) as its de-duplication id.
async fn into_fifo(state: &Shared, topic: &str, msg: Message) {
    // Stable through redeliveries: its id, or its place in NOTIFY.
    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
    let message_id = header(&msg, async_nats::header::NATS_MESSAGE_ID.as_ref())
        .map(str::to_string)
        .unwrap_or_else(|| format!("notify-{seq}"));
    let origin = serde_json::from_slice::<TopicMessage>(&msg.payload)
        .ok()
        .and_then(|m| m.origin)
        .unwrap_or_else(|| "default".into());
    // Group ids are at most 128 characters; a long origin keeps its hash.
    let group = if origin.len() <= crate::grpc::MAX_FIFO_ID
        && origin.bytes().all(|b| b.is_ascii_graphic())
    {
        origin
    } else {
        sluice_model::ids::derive_id(&origin, "fifo-group")
    };
    if !state.registry.snapshot().by_topic.contains_key(topic) {
        // No subscription (or no such topic): nothing to deliver, as for
        // any topic message.
        let _ = msg.double_ack().await;
        return;
    }
    let mut headers = msg.headers.clone().unwrap_or_default();
    headers.insert(sluice_bus::headers::TOPIC, topic);
    headers.insert(sluice_bus::headers::MESSAGE_GROUP_ID, group.as_str());
    headers.insert(sluice_bus::headers::DEDUPLICATION_ID, message_id.as_str());
    match state
        .bus
        .publish_raw(
            &subjects::fifo(topic, &group),
            &message_id,
            msg.payload.clone(),
            headers,
        )
        .await
    {
        Ok(_) => {
            let _ = msg.double_ack().await;
            metrics::counter!("sluice.notifier.fanout", "outcome" => "to_fifo").increment(1);
        }
        Err(e) => {
            tracing::warn!(%topic, error = %e, "cannot move a rule's message into the FIFO topic; will retry");
            let _ = msg.ack_with(AckKind::Nak(Some(RETRY))).await;
        }
    }
}

/// A queue subscription's copy into its queue.
async fn to_queue(
    state: &Shared,
    topic: &str,
    sub: &Compiled,
    copy_id: &str,
    body: String,
    headers: async_nats::HeaderMap,
) -> &'static str {
    match state
        .bus
        .send_to_queue(&sub.spec.endpoint, copy_id, body.into(), headers)
        .await
    {
        Ok(Some(_)) => "delivered",
        // No stream answered: the queue is gone, or JetStream is between
        // leaders. Only a queue that is really gone loses its copy.
        Ok(None) => match state.bus.queue_state(&sub.spec.endpoint).await {
            Ok(None) => {
                tracing::warn!(%topic, subscription = %sub.spec.subscription_id,
                    queue = %sub.spec.endpoint, "the subscription's queue is gone; the copy is dropped");
                "dropped"
            }
            _ => "retried",
        },
        // The same copy would never fit: dropped, and said so.
        Err(e @ BusError::TooLarge { .. }) => {
            tracing::error!(%topic, subscription = %sub.spec.subscription_id, error = %e,
                "the copy is too large for the queue; dropped");
            "too_large"
        }
        Err(e) => {
            tracing::warn!(%topic, subscription = %sub.spec.subscription_id, error = %e,
                "the subscription's queue did not take the message; will retry");
            "retried"
        }
    }
}

/// An http(s) or email subscription's copy onto its delivery subject. A
/// subscription whose backlog is full gets the copy in its dead letters
/// instead, so it holds back no other subscription.
#[allow(clippy::too_many_arguments)]
async fn to_deliveries(
    state: &Shared,
    topic: &str,
    sub: &Compiled,
    copy_id: &str,
    body: String,
    headers: async_nats::HeaderMap,
    published: time::OffsetDateTime,
    seq: u64,
) -> &'static str {
    let key = subjects::subscription_key(topic, &sub.spec.subscription_id);
    let subject = subjects::deliver(&key);
    let payload = bytes::Bytes::from(body);
    match state
        .bus
        .publish(&subject, copy_id, payload.clone(), headers.clone())
        .await
    {
        Ok(_) => "queued",
        Err(BusError::SubjectFull { .. }) => {
            let reason = format!(
                "the subscription already has {} deliveries waiting (SLUICE_TARGET_MAX_BACKLOG)",
                state.config.common.queue.target_max_backlog
            );
            let source = format!("full-{key}");
            let failure = Failure::refused(
                &subject, copy_id, &payload, &headers, &reason, published, &source, seq,
            );
            tracing::warn!(%topic, subscription = %sub.spec.subscription_id,
                "the subscription's backlog is full; dead-lettering its copy");
            match state
                .bus
                .dead_letter_to(&subjects::dlq_subscription(&key), &failure)
                .await
            {
                Ok(()) => "backlog_full",
                Err(e) => {
                    tracing::warn!(error = %e, "cannot dead-letter the copy; will retry");
                    "retried"
                }
            }
        }
        Err(e @ BusError::TooLarge { .. }) => {
            tracing::error!(%topic, subscription = %sub.spec.subscription_id, error = %e,
                "the copy is too large for the deliveries stream; dropped");
            "too_large"
        }
        Err(e) => {
            tracing::warn!(%topic, subscription = %sub.spec.subscription_id, error = %e,
                "the copy was not stored; will retry");
            "retried"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_sns_notification_json() {
        let m = TopicMessage {
            message: "hi".into(),
            subject: Some("Hello".into()),
            message_attributes: json!({"c": {"Type": "String", "Value": "red"}})
                .as_object()
                .cloned()
                .unwrap(),
            origin: None,
        };
        let at =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let e: Value = serde_json::from_str(&envelope("arn:t", "m-1", &m, at, None, None)).unwrap();
        assert_eq!(
            e,
            json!({"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:t",
                   "Subject": "Hello", "Message": "hi", "Timestamp": "2023-11-14T22:13:20.123Z",
                   "MessageAttributes": {"c": {"Type": "String", "Value": "red"}}})
        );
        let bare = TopicMessage {
            subject: None,
            message_attributes: Default::default(),
            ..m
        };
        let e: Value =
            serde_json::from_str(&envelope("arn:t", "m-1", &bare, at, Some("http://u"), None))
                .unwrap();
        assert!(e.get("Subject").is_none() && e.get("MessageAttributes").is_none());
        assert!(e.get("SequenceNumber").is_none());
        assert_eq!(e["UnsubscribeURL"], "http://u");
        let e: Value =
            serde_json::from_str(&envelope("arn:t", "m-1", &bare, at, None, Some("42"))).unwrap();
        assert_eq!(e["SequenceNumber"], "42", "FIFO notifications carry it");
    }
}
