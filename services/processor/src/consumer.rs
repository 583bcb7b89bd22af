//! The ingest consumer: pulls from the durable consumer, processes with
//! bounded concurrency and settles each message on its own — ack when done,
//! `Nak(delay)` for a transient failure, dead-letter then ack when it can
//! never succeed or its deliveries ran out. One slow or bad message never
//! holds back or re-drives its batch mates.

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::Message;
use sluice_bus::dlq::Failure;
use sluice_bus::work::{keep_pulling, Pull};
use sluice_model::Envelope;
use sluice_store::events::Delivery;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{field, info_span, Instrument};

use crate::error::ProcessError;
use crate::Shared;

/// Queue name of the ingest queue in the DLQ (`dlq.ingest`).
const QUEUE: &str = "ingest";

/// Runs until `shutdown`, then waits for in-flight messages (up to the
/// configured timeout). Pulled messages not yet started are left to
/// redelivery after the visibility timeout.
pub async fn run(state: Shared, shutdown: CancellationToken) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(state.config.concurrency));
    let mut tasks = JoinSet::new();
    let pull = Pull {
        batch: state.config.batch,
        what: "the ingest queue",
    };
    let declare = || {
        let state = state.clone();
        async move {
            let names = state.bus.names();
            state
                .bus
                .declare_consumer(
                    sluice_bus::streams::processor_consumer(names, &state.config.common.queue),
                    names.ingest(),
                    "the processor's consumer",
                )
                .await
        }
    };
    keep_pulling(declare, pull, slots, None, &shutdown, |msg, permit| {
        while tasks.try_join_next().is_some() {}
        let state = state.clone();
        tasks.spawn(async move {
            handle(&state, msg).await;
            drop(permit);
        });
    })
    .await;
    tracing::info!(in_flight = tasks.len(), "draining in-flight messages");
    let drained = tokio::time::timeout(state.config.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown timeout: unfinished messages will be redelivered");
    }
    Ok(())
}

async fn handle(state: &Shared, msg: Message) {
    let started = Instant::now();
    let names = state.bus.names();
    let subject = names.unprefix(msg.subject.as_str()).to_string();
    let kind = sluice_bus::subjects::ingest_kind(&subject)
        .unwrap_or(&subject)
        .to_string();
    let (delivered, stream_seq, published, stream_name) = match msg.info() {
        Ok(i) => (
            u32::try_from(i.delivered).unwrap_or(u32::MAX),
            i.stream_sequence,
            i.published,
            i.stream.to_string(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "message without JetStream metadata; ignored");
            return;
        }
    };
    let envelope = Envelope::from_bytes(&msg.payload);
    // The event id is the envelope's; a redriven message carries a different
    // Nats-Msg-Id (so the dedupe window cannot swallow it) but the same event.
    let msg_id = match &envelope {
        Ok(e) => e.id.clone(),
        Err(_) => msg
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string())
            .unwrap_or_else(|| format!("{stream_name}-{stream_seq}")),
    };

    let span = info_span!(
        "sluice.processor.message",
        otel.name = "sluice.processor.message",
        kind = %kind,
        event_id = %msg_id,
        attempt = delivered,
        trace_id = field::Empty,
    );
    sluice_telemetry::set_parent(&span, sluice_telemetry::nats_context(msg.headers.as_ref()));
    span.record("trace_id", sluice_telemetry::trace_id_of(&span));

    async {
        let accepted_at = published.format(&Rfc3339).unwrap_or_default();
        let delivery = Delivery {
            id: &msg_id,
            kind: &kind,
            source: envelope.as_ref().ok().map(|e| e.source.as_str()),
            detail_type: envelope.as_ref().ok().map(|e| e.detail_type.as_str()),
            attempts: delivered,
            accepted_at: &accepted_at,
        };
        let max = state.config.common.queue.max_receive;
        let result = if delivered > max {
            // A previous delivery never settled (the processor died or timed out).
            Err(ProcessError::Transient(format!(
                "no delivery of {max} finished (processor crashed or exceeded the visibility timeout)"
            )))
        } else {
            match &envelope {
                Ok(env) => {
                    let event_bus = msg
                        .headers
                        .as_ref()
                        .and_then(|hm| hm.get(sluice_bus::headers::EVENT_BUS))
                        .map(|v| v.as_str());
                    crate::work::process(state, &kind, env, event_bus, &delivery).await
                }
                Err(e) => Err(ProcessError::Permanent(format!("payload is not an event envelope: {e}"))),
            }
        };
        let outcome = match result {
            Ok(()) => {
                ack(&msg).await;
                tracing::debug!("processed");
                "processed"
            }
            Err(ProcessError::Transient(reason)) if delivered < max => {
                tracing::warn!(%reason, "attempt failed; will retry");
                let _ = state.store.mark_failed(&delivery, &reason).await;
                let delay = state.config.common.queue.retry_delay(delivered);
                if let Err(e) = msg.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(error = %e, "nak failed; redelivery after the visibility timeout");
                }
                "retried"
            }
            Err(e) => {
                let terminal = matches!(e, ProcessError::Permanent(_));
                let reason = e.to_string();
                tracing::error!(%reason, terminal, "dead-lettering");
                let failure = Failure {
                    subject: &subject,
                    msg_id: &msg_id,
                    payload: &msg.payload,
                    headers: msg.headers.as_ref(),
                    reason: &reason,
                    attempts: delivered,
                    terminal,
                    accepted_at: published,
                    source_stream: &stream_name,
                    source_seq: stream_seq,
                    last_response: None,
                };
                match state.bus.dead_letter(QUEUE, &failure).await {
                    Ok(()) => {
                        let _ = state.store.mark_dead_lettered(&delivery, &reason).await;
                        ack(&msg).await;
                        "dead_lettered"
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot dead-letter; will retry");
                        let delay = state.config.common.queue.retry_delay(delivered);
                        let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
                        "retried"
                    }
                }
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        // Labels stay bounded whatever lands on the queue.
        let kind = if matches!(kind.as_str(), "event" | "order") { kind.clone() } else { "other".into() };
        metrics::counter!("sluice.processor.messages", "kind" => kind.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("sluice.processor.duration.seconds", "kind" => kind.clone()).record(elapsed);
        if outcome == "processed" {
            let lag = (time::OffsetDateTime::now_utc() - published).as_seconds_f64();
            metrics::histogram!("sluice.processor.end_to_end.seconds", "kind" => kind.clone())
                .record(lag.max(0.0));
        }
    }
    .instrument(span)
    .await;
}

async fn ack(msg: &Message) {
    // A lost ack only means a redelivery, which processing absorbs.
    if let Err(e) = msg.double_ack().await {
        tracing::warn!(error = %e, "ack not confirmed; the message may be redelivered");
    }
}
