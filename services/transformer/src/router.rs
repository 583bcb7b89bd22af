//! The router: reads every bus event once (one durable consumer shared by
//! the replicas), matches it against its bus's enabled rules, and for each
//! (rule, target) publishes one delivery to that target's own subject
//! (`deliver.<key>`). The event is acknowledged once every delivery is
//! stored; a failure leaves it to be routed again, and the deliveries
//! already stored are de-duplicated by their ids.
//!
//! Routing never waits on a target: a slow or failing target holds back
//! only its own deliveries, which its own consumer works through.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::Message;
use async_nats::HeaderMap;
use sluice_bus::dlq::Failure;
use sluice_bus::work::{keep_pulling, Pull};
use sluice_bus::{headers as h, subjects};
use sluice_model::ids::derive_id;
use sluice_model::names::DEFAULT_BUS;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{field, info_span, Instrument};

use crate::Shared;

/// The delivery id of `event_id` for target `id` of `rule` on `bus`: the
/// same inputs always give the same id, so a repeated routing is
/// de-duplicated and a receiver can drop a repeated delivery.
pub fn delivery_id(event_id: &str, bus: &str, rule: &str, target: &str) -> String {
    derive_id(event_id, &format!("delivery/{bus}/{rule}/{target}"))
}

/// Routes until `shutdown`, then lets in-flight routings finish.
pub async fn run(state: Shared, shutdown: CancellationToken) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(state.config.router_concurrency));
    let pull = Pull {
        batch: state.config.router_concurrency.min(1024),
        what: "the bus",
    };
    let declare = || {
        let state = state.clone();
        async move {
            let names = state.bus.names();
            state
                .bus
                .declare_consumer(
                    sluice_bus::streams::router_consumer(
                        names,
                        state.config.router_ack_wait,
                        i64::try_from(state.config.router_concurrency * 4).unwrap_or(i64::MAX),
                    ),
                    names.bus(),
                    "the router's consumer",
                )
                .await
        }
    };
    keep_pulling(declare, pull, slots, None, &shutdown, |msg, permit| {
        let state = state.clone();
        state.tracker.clone().spawn(async move {
            route(&state, msg).await;
            drop(permit);
        });
    })
    .await;
    Ok(())
}

async fn route(state: &Shared, msg: Message) {
    let started = Instant::now();
    let (published, stream, seq, delivered) = match msg.info() {
        Ok(i) => (
            i.published,
            i.stream.to_string(),
            i.stream_sequence,
            u32::try_from(i.delivered).unwrap_or(u32::MAX),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "bus message without JetStream metadata; terminated");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let bus_name = msg
        .headers
        .as_ref()
        .and_then(|hm| hm.get(h::EVENT_BUS))
        .map(|v| v.as_str().to_string())
        .unwrap_or_else(|| DEFAULT_BUS.to_string());
    let span = info_span!(
        "sluice.transformer.route",
        otel.name = "sluice.transformer.route",
        bus = %bus_name,
        event_id = field::Empty,
        matched = field::Empty,
        trace_id = field::Empty,
    );
    sluice_telemetry::set_parent(&span, sluice_telemetry::nats_context(msg.headers.as_ref()));
    span.record("trace_id", sluice_telemetry::trace_id_of(&span));
    async {
        // The event is read, not built: its id, then only the values the
        // bus's rules name (the matcher reads the text).
        let Some((text, id)) = head(&msg.payload) else {
            return unroutable(state, &msg, "the bus message is not a JSON object", published, &stream, seq, delivered).await;
        };
        let event_id = id.unwrap_or_else(|| format!("{stream}-{seq}"));
        tracing::Span::current().record("event_id", event_id.as_str());
        let snapshot = state.registry.snapshot();
        let rules = match snapshot.route_json(&bus_name, text) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("the event cannot be matched: {e}");
                return unroutable(state, &msg, &reason, published, &stream, seq, delivered).await;
            }
        };
        let mut publishes = Vec::new();
        for rule in &rules {
            for target in &rule.targets {
                publishes.push(store_delivery(
                    state,
                    target,
                    &event_id,
                    &event_id,
                    msg.payload.clone(),
                    published,
                    seq,
                ));
            }
        }
        let count = publishes.len();
        tracing::Span::current().record("matched", rules.len());
        let results = futures::future::join_all(publishes).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if failed > 0 {
            let first = results.into_iter().find_map(Result::err).map(|e| e.to_string()).unwrap_or_default();
            tracing::warn!(failed, error = %first, "deliveries not stored; the event will be routed again");
            let delay = Duration::from_millis(500).saturating_mul(delivered.min(20));
            let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
            metrics::counter!("sluice.transformer.routed", "outcome" => "retried").increment(1);
            return;
        }
        if let Err(e) = msg.double_ack().await {
            tracing::warn!(error = %e, "bus ack not confirmed; the event may be routed again (deliveries are de-duplicated)");
        }
        let outcome = if rules.is_empty() { "unmatched" } else { "matched" };
        metrics::counter!("sluice.transformer.routed", "outcome" => outcome).increment(1);
        metrics::counter!("sluice.transformer.deliveries.created").increment(count as u64);
        metrics::histogram!("sluice.transformer.route.duration.seconds")
            .record(started.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await;
}

/// The text of a bus message that is a JSON object, and its `id` when that
/// is a string; `None` for anything else.
fn head(payload: &[u8]) -> Option<(&str, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        id: Option<serde_json::Value>,
    }
    let text = std::str::from_utf8(payload).ok()?;
    // A struct also reads from an array: only objects are events.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let head: Head = serde_json::from_str(text).ok()?;
    let id = match head.id {
        Some(serde_json::Value::String(id)) => Some(id),
        _ => None,
    };
    Some((text, id))
}

/// Stores one delivery of event `event_id` (its JSON in `payload`) to
/// `target`, de-duplicated by its delivery id, which derives from `key`
/// (the event id; a replay's own key for a replayed event). When the target's backlog is
/// full the delivery goes to the target's dead letters instead, so the other
/// targets are not held back. `published` and `seq` say where the event came
/// from (for the dead letter).
pub(crate) async fn store_delivery(
    state: &Shared,
    target: &crate::model::CompiledTarget,
    event_id: &str,
    key: &str,
    payload: bytes::Bytes,
    published: time::OffsetDateTime,
    seq: u64,
) -> Result<(), sluice_bus::BusError> {
    let id = delivery_id(key, &target.bus, &target.rule, &target.id);
    let mut headers = HeaderMap::new();
    headers.insert(h::DELIVERY_ID, id.as_str());
    headers.insert(h::EVENT_ID, event_id);
    headers.insert(h::BUS, target.bus.as_str());
    headers.insert(h::RULE, target.rule.as_str());
    headers.insert(h::TARGET, target.id.as_str());
    let subject = target.subject_for(&payload);
    match state
        .bus
        .publish(&subject, &id, payload.clone(), headers.clone())
        .await
    {
        Ok(_) => {
            state.bells.ring(&subject);
            Ok(())
        }
        Err(sluice_bus::BusError::SubjectFull { .. }) => {
            let reason = format!(
                "the target already has {} deliveries waiting (SLUICE_TARGET_MAX_BACKLOG)",
                state.config.common.queue.target_max_backlog
            );
            let source = format!("full-{}", target.key);
            let failure = Failure::refused(
                &subject, &id, &payload, &headers, &reason, published, &source, seq,
            );
            metrics::counter!("sluice.transformer.deliveries.refused").increment(1);
            tracing::warn!(target_key = %target.key, "the target's backlog is full; dead-lettering the delivery");
            state
                .bus
                .dead_letter_to(&subjects::dlq_target(&target.key), &failure)
                .await
        }
        Err(e) => Err(e),
    }
}

/// A bus message that can never be routed goes to the DLQ (`dlq.router`)
/// with its reason, then is acknowledged.
#[allow(clippy::too_many_arguments)]
async fn unroutable(
    state: &Shared,
    msg: &Message,
    reason: &str,
    published: time::OffsetDateTime,
    stream: &str,
    seq: u64,
    delivered: u32,
) {
    tracing::error!(%reason, "dead-lettering a bus message");
    let subject = state.bus.names().unprefix(msg.subject.as_str()).to_string();
    let msg_id = msg
        .headers
        .as_ref()
        .and_then(|hm| hm.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str().to_string())
        .unwrap_or_else(|| format!("{stream}-{seq}"));
    let failure = Failure {
        subject: &subject,
        msg_id: &msg_id,
        payload: &msg.payload,
        headers: msg.headers.as_ref(),
        reason,
        attempts: delivered,
        terminal: true,
        accepted_at: published,
        source_stream: stream,
        source_seq: seq,
        last_response: None,
    };
    match state.bus.dead_letter("router", &failure).await {
        Ok(()) => {
            let _ = msg.double_ack().await;
            metrics::counter!("sluice.transformer.routed", "outcome" => "dead_lettered")
                .increment(1);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot dead-letter; will retry");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_stable_per_event_and_target() {
        let a = delivery_id("e1", "default", "r", "t");
        assert_eq!(a, delivery_id("e1", "default", "r", "t"));
        assert_ne!(a, delivery_id("e2", "default", "r", "t"));
        assert_ne!(a, delivery_id("e1", "default", "r", "u"));
        assert_ne!(a, delivery_id("e1", "other", "r", "t"));
    }

    #[test]
    fn only_json_objects_are_events_and_a_string_id_is_theirs() {
        let id = |t: &str| head(t.as_bytes()).map(|(_, id)| id);
        assert_eq!(
            id(r#"{"id": "e-1", "detail": {"id": 5}}"#),
            Some(Some("e-1".into()))
        );
        assert_eq!(id(r#" {"id": 7}"#), Some(None));
        assert_eq!(id(r#"{"source": "s"}"#), Some(None));
        for bad in ["[\"e-1\"]", "\"e\"", "{\"id\": \"e\"", "", "{} {}"] {
            assert_eq!(id(bad), None, "{bad}");
        }
        assert_eq!(head(b"{\"id\": \"\xff\"}"), None);
    }
}
