//! The tasks' outbox relay: a task's events are written into its own item
//! with the change (crates/store `tasks`); this publishes them to the bus
//! and clears the outbox. The writer does it right after its write; the
//! [`relay`] loop (in the processor) does it for writers that died first.
//!
//! Each event is published with its id as `Nats-Msg-Id`, so a relay racing
//! the writer within JetStream's de-duplication window publishes it once.
//! Past that window an event can reach the bus twice (a writer that
//! published and died before clearing); consumers de-duplicate by event id,
//! as with every sluice event. An event is never lost and never published
//! for a write that did not happen.

use std::time::Duration;

use async_nats::HeaderMap;
use sluice_bus::{Bus, BusError};
use sluice_store::tasks::OutboxEntry;
use sluice_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// Why a flush stopped (what was published stays published; the outbox
/// stays until a flush completes).
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// JetStream did not take an event.
    #[error("publishing the event: {0}")]
    Bus(#[from] BusError),
    /// The store did not answer.
    #[error("clearing the outbox: {0}")]
    Store(#[from] StoreError),
}

/// How long a deleted task's tombstone stays once its event is out.
pub const TOMBSTONE: time::Duration = time::Duration::hours(1);

/// Publishes `entries` (the outbox of task `id` at `version`) and clears
/// the outbox (a tombstone then starts to expire). Returns whether it was
/// cleared (`false`: the task changed meanwhile and its newer writer
/// flushes the rest).
pub async fn flush(
    bus: &Bus,
    store: &Store,
    id: &str,
    version: u64,
    entries: &[OutboxEntry],
    tombstone: bool,
) -> Result<bool, FlushError> {
    for e in entries {
        bus.publish(
            &e.subject,
            &e.id,
            e.payload.clone().into_bytes().into(),
            HeaderMap::new(),
        )
        .await?;
    }
    let expires = tombstone.then(|| (time::OffsetDateTime::now_utc() + TOMBSTONE).unix_timestamp());
    Ok(store.clear_outbox(id, version, expires).await?)
}

/// Flushes task `id`'s outbox as stored now. Returns how many events it
/// published.
pub async fn flush_stored(bus: &Bus, store: &Store, id: &str) -> Result<usize, FlushError> {
    let Some(stored) = store.stored_task(id).await? else {
        return Ok(0);
    };
    if stored.outbox.is_empty() {
        return Ok(0);
    }
    flush(
        bus,
        store,
        id,
        stored.task.version,
        &stored.outbox,
        stored.deleted,
    )
    .await?;
    Ok(stored.outbox.len())
}

/// Every `interval`, publishes the outboxes pending for longer than
/// `grace` (their writer should have done it by then), until `shutdown`.
pub async fn relay(
    bus: Bus,
    store: Store,
    grace: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = time::OffsetDateTime::now_utc()
            - time::Duration::try_from(grace).unwrap_or(time::Duration::ZERO);
        let before = before
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let ids = match store.pending_outboxes(&before, 100).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read pending outboxes; will retry");
                continue;
            }
        };
        for id in ids {
            match flush_stored(&bus, &store, &id).await {
                Ok(n) if n > 0 => {
                    tracing::info!(task = %id, events = n, "published a task's pending events its writer left");
                    metrics::counter!("sluice.outbox.relayed").increment(n as u64);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(task = %id, error = %e, "cannot relay a task's events; will retry");
                }
            }
        }
    }
}
