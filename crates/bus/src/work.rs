//! The consuming loop every sluice worker runs: pull from a durable
//! consumer, take a message only when a slot is free (and the pace allows),
//! hand it on with its slot. The client asks for `batch` messages at a time,
//! so at most about that many wait in memory for a slot: size the batch so
//! they start well within the ack wait. When pulling breaks (the consumer
//! was deleted, the stream recreated), the consumer is declared again; when
//! the server stops answering (a missed heartbeat), pulling starts afresh.
//!
//! [`keep_pulling_on_demand`] is the same loop for consumers that are idle
//! most of the time (one per rule target): it holds a pull request only
//! while its consumer has messages waiting or unacknowledged, and otherwise
//! waits for its bell. JetStream's cost of storing a message grows with the
//! pull requests waiting on the stream (a stream with 1,000 filtered
//! consumers each holding one stored 3,000 messages/s on the development
//! machine, against 206,000 with the same consumers idle), so thousands of
//! idle targets must not each hold one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::Message;
use futures::StreamExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Fresh pulls after missed heartbeats, with no message between them,
/// before the consumer is declared again.
const QUIET_RESTARTS: u32 = 3;

/// How long one on-demand pull request waits for messages.
const ON_DEMAND_EXPIRES: Duration = Duration::from_secs(5);

/// Waits until the next message may be taken (a rate limiter).
pub type PaceFn = dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// An owned [`PaceFn`].
pub type Pace = Box<PaceFn>;

/// How to pull.
#[derive(Debug, Clone, Copy)]
pub struct Pull {
    /// Messages asked for per pull request.
    pub batch: usize,
    /// What the loop is, for its log lines.
    pub what: &'static str,
}

/// Why [`pull_loop`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `stop` fired.
    Stopped,
    /// Pulling failed (the consumer may be gone): declare it again.
    Broken,
}

/// Pulls until `stop` (or until pulling fails) and calls `handle` with each
/// message and its slot (the slot frees when the permit drops).
pub async fn pull_loop<F>(
    consumer: &PullConsumer,
    pull: Pull,
    slots: Arc<Semaphore>,
    pace: Option<&PaceFn>,
    stop: &CancellationToken,
    mut handle: F,
) -> Ended
where
    F: FnMut(Message, OwnedSemaphorePermit),
{
    let mut quiet_restarts = 0u32;
    'outer: while !stop.is_cancelled() {
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(pull.batch.max(1))
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pull ({})", pull.what);
                return Ended::Broken;
            }
        };
        loop {
            let permit = tokio::select! {
                _ = stop.cancelled() => break 'outer,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break 'outer,
                },
            };
            if let Some(pace) = pace {
                tokio::select! {
                    _ = stop.cancelled() => break 'outer,
                    _ = pace() => {}
                }
            }
            let next = tokio::select! {
                _ = stop.cancelled() => break 'outer,
                m = messages.next() => m,
            };
            match next {
                Some(Ok(msg)) => {
                    quiet_restarts = 0;
                    handle(msg, permit);
                }
                Some(Err(e)) if e.kind() == MessagesErrorKind::MissingHeartbeat => {
                    // The server holds no pull request of ours (the
                    // client's count of what it asked for and what arrived
                    // disagrees with the server's): nothing would arrive
                    // until the request's expiry. It is reported only once
                    // everything received has been taken; the old pull is
                    // dropped before the pause, so nothing arrives into it.
                    drop(messages);
                    quiet_restarts += 1;
                    metrics::counter!("sluice.pull.restarts").increment(1);
                    if quiet_restarts >= QUIET_RESTARTS {
                        tracing::warn!(
                            "no heartbeat from the server after {quiet_restarts} fresh pulls ({}); declaring the consumer again",
                            pull.what
                        );
                        return Ended::Broken;
                    }
                    tracing::debug!(error = %e, "pull ({}); pulling afresh", pull.what);
                    tokio::select! {
                        _ = stop.cancelled() => break 'outer,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                    continue 'outer;
                }
                Some(Err(e)) => {
                    // The consumer was deleted, is gone, or refuses this
                    // kind of pull: declare it again.
                    tracing::warn!(error = %e, "cannot pull ({})", pull.what);
                    return Ended::Broken;
                }
                None => break,
            }
        }
    }
    Ended::Stopped
}

/// Pulls like [`pull_loop`], but with pull requests that end (`expires`),
/// and only while the consumer has work: after a pull that brought nothing
/// it asks the consumer for its counts and, when nothing is waiting or
/// unacknowledged, holds no request until `bell` rings (a message stored
/// for it, or a periodic look at the stream finding one). A bell rung
/// while pulling is kept, so no ring is missed between the look and the
/// wait.
pub async fn pull_on_demand<F>(
    consumer: &PullConsumer,
    pull: Pull,
    slots: Arc<Semaphore>,
    pace: Option<&PaceFn>,
    bell: &Notify,
    stop: &CancellationToken,
    mut handle: F,
) -> Ended
where
    F: FnMut(Message, OwnedSemaphorePermit),
{
    while !stop.is_cancelled() {
        let mut batch = match consumer
            .batch()
            .max_messages(pull.batch.max(1))
            .expires(ON_DEMAND_EXPIRES)
            .messages()
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pull ({})", pull.what);
                return Ended::Broken;
            }
        };
        let mut got = 0usize;
        loop {
            let permit = tokio::select! {
                _ = stop.cancelled() => return Ended::Stopped,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return Ended::Stopped,
                },
            };
            if let Some(pace) = pace {
                tokio::select! {
                    _ = stop.cancelled() => return Ended::Stopped,
                    _ = pace() => {}
                }
            }
            let next = tokio::select! {
                _ = stop.cancelled() => return Ended::Stopped,
                m = batch.next() => m,
            };
            match next {
                Some(Ok(msg)) => {
                    got += 1;
                    handle(msg, permit);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot pull ({})", pull.what);
                    return Ended::Broken;
                }
                None => break,
            }
        }
        if got > 0 {
            continue;
        }
        match consumer.get_info().await {
            Ok(info) if info.num_pending == 0 && info.num_ack_pending == 0 => {
                tokio::select! {
                    _ = stop.cancelled() => return Ended::Stopped,
                    _ = bell.notified() => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the consumer ({})", pull.what);
                return Ended::Broken;
            }
        }
    }
    Ended::Stopped
}

/// Runs [`pull_loop`] on the consumer `declare` returns (declaring is
/// idempotent), declaring it again whenever pulling breaks, until `stop`.
pub async fn keep_pulling<D, Fut, F>(
    declare: D,
    pull: Pull,
    slots: Arc<Semaphore>,
    pace: Option<Pace>,
    stop: &CancellationToken,
    handle: F,
) where
    D: FnMut() -> Fut,
    Fut: Future<Output = Result<PullConsumer, crate::BusError>>,
    F: FnMut(Message, OwnedSemaphorePermit),
{
    declaring(declare, pull, slots, pace, None, stop, handle).await;
}

/// Runs [`pull_on_demand`] on the consumer `declare` returns, declaring it
/// again whenever pulling breaks, until `stop`.
pub async fn keep_pulling_on_demand<D, Fut, F>(
    declare: D,
    pull: Pull,
    slots: Arc<Semaphore>,
    pace: Option<Pace>,
    bell: &Notify,
    stop: &CancellationToken,
    handle: F,
) where
    D: FnMut() -> Fut,
    Fut: Future<Output = Result<PullConsumer, crate::BusError>>,
    F: FnMut(Message, OwnedSemaphorePermit),
{
    declaring(declare, pull, slots, pace, Some(bell), stop, handle).await;
}

async fn declaring<D, Fut, F>(
    mut declare: D,
    pull: Pull,
    slots: Arc<Semaphore>,
    pace: Option<Pace>,
    bell: Option<&Notify>,
    stop: &CancellationToken,
    mut handle: F,
) where
    D: FnMut() -> Fut,
    Fut: Future<Output = Result<PullConsumer, crate::BusError>>,
    F: FnMut(Message, OwnedSemaphorePermit),
{
    while !stop.is_cancelled() {
        match declare().await {
            Ok(consumer) => {
                let ended = match bell {
                    None => {
                        pull_loop(
                            &consumer,
                            pull,
                            slots.clone(),
                            pace.as_deref(),
                            stop,
                            &mut handle,
                        )
                        .await
                    }
                    Some(bell) => {
                        pull_on_demand(
                            &consumer,
                            pull,
                            slots.clone(),
                            pace.as_deref(),
                            bell,
                            stop,
                            &mut handle,
                        )
                        .await
                    }
                };
                if ended == Ended::Stopped {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot declare the consumer ({}); retrying", pull.what)
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
