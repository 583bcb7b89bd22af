//! Delivery: every target has its own durable consumer on the deliveries
//! stream (filtered to `deliver.<key>`), so each target has its own
//! backlog, its own retries and its own limits, and one slow or failing
//! target holds back no other target, rule or bus.
//!
//! Every replica runs one worker per target on the shared consumer. A
//! worker pulls only as many deliveries as it may run at once (its share
//! of the target's `max_concurrency`, see [`crate::presence`]) and as its
//! share of `rate_per_second` allows, delivers each, and settles it: ack on
//! success, `Nak(backoff)` while the retry policy allows, otherwise the
//! target's dead-letter queue (`dlq.target.<key>`) with the reason, the
//! attempts, the last response and the original event, then ack.
//!
//! Workers follow the registry: a new target gets a worker, a changed one
//! a fresh worker, a removed one loses its worker.
//!
//! A worker holds a pull request only while its consumer has deliveries
//! waiting or unacknowledged ([`keep_pulling_on_demand`]): an idle one
//! waits for its bell, which this replica rings when it stores a delivery
//! for that subject and which [`sweep`] rings every second for every
//! delivery subject holding messages (deliveries stored by another
//! replica, redriven, or left by a replica that died). JetStream's cost of
//! storing a message grows with the pull requests waiting on the stream, so
//! thousands of idle targets holding one each would slow every delivery.

pub mod http;
pub mod kafka;
pub mod oauth;
pub use sluice_outbound::retry;
pub mod workflow;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::Message;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt as _;
use governor::{Quota, RateLimiter};
use sluice_bus::work::{keep_pulling_on_demand, Pace, Pull};
use sluice_bus::{headers as h, subjects};
use sluice_model::topic::TopicMessage;
use sluice_patterns::transform::Context;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{field, info_span, Instrument};

use crate::model::{rule_arn, CompiledTarget, Destination, InputSpec};
use crate::presence::share;
use crate::Shared;
use retry::Outcome;
use sluice_runtime::settle::{facts, settle, Attempted, Facts};

/// Facts about one delivery attempt.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    /// The stable delivery id.
    pub delivery_id: &'a str,
    /// The event's id.
    pub event_id: &'a str,
    /// Attempt number, 1-based.
    pub attempt: u32,
}

/// The bells of the delivery workers, by delivery subject (unprefixed).
#[derive(Debug, Default)]
pub struct Bells(std::sync::Mutex<HashMap<String, Arc<Notify>>>);

impl Bells {
    /// The bell of `subject`'s worker.
    pub fn bell(&self, subject: &str) -> Arc<Notify> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(subject.to_string())
            .or_default()
            .clone()
    }

    /// Wakes `subject`'s worker, if this replica runs one (a worker that is
    /// pulling keeps the ring for its next idle wait).
    pub fn ring(&self, subject: &str) {
        if let Some(b) = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(subject)
        {
            b.notify_one();
        }
    }

    /// Forgets the bells of targets no longer routed to.
    fn retain(&self, keys: &HashSet<String>) {
        let keys: HashSet<String> = keys.iter().map(|k| subjects::token(k)).collect();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|subject, _| {
                let rest = subject.strip_prefix("deliver.").unwrap_or(subject);
                let key = rest.split('.').next().unwrap_or(rest);
                keys.contains(key)
            });
    }
}

/// How often [`sweep`] looks for delivery subjects holding messages.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Every second, rings the bell of every delivery subject that holds
/// messages, until `shutdown`: wakes this replica's idle workers for
/// deliveries it did not store itself.
pub async fn sweep(state: Shared, shutdown: CancellationToken) {
    let names = state.bus.names();
    let filter = names.subject(subjects::DELIVER_ALL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        let listed = async {
            let stream = state
                .bus
                .jetstream()
                .get_stream(names.deliveries())
                .await
                .map_err(|e| e.to_string())?;
            let mut subjects = stream
                .info_with_subjects(&filter)
                .await
                .map_err(|e| e.to_string())?;
            while let Some(item) = subjects.next().await {
                let (subject, count) = item.map_err(|e| e.to_string())?;
                if count > 0 {
                    state.bells.ring(names.unprefix(&subject));
                }
            }
            Ok::<_, String>(())
        }
        .await;
        if let Err(e) = listed {
            tracing::debug!(error = %e, "cannot list the delivery subjects holding messages");
        }
    }
}

struct Running {
    fingerprint: (u64, usize),
    cancel: CancellationToken,
}

/// The consumer's ack wait for a target: long enough for an attempt that
/// uses its whole timeout, twice.
pub fn ack_wait(target: &CompiledTarget) -> Duration {
    target.timeout * 2 + Duration::from_secs(5)
}

/// Creates (or updates) the durable consumer of a target.
pub async fn ensure_consumer(
    state: &Shared,
    target: &CompiledTarget,
) -> Result<PullConsumer, sluice_bus::BusError> {
    let names = state.bus.names();
    let config = sluice_bus::streams::target_consumer(
        names,
        &target.key,
        ack_wait(target),
        i64::from(state.config.target_max_pending),
        format!(
            "sluice target {}/{}/{} ({})",
            target.bus,
            target.rule,
            target.id,
            target.destination.kind()
        ),
    );
    let what = format!(
        "consumer of target {}/{}/{}",
        target.bus, target.rule, target.id
    );
    state
        .bus
        .declare_consumer(config, names.deliveries(), &what)
        .await
}

/// Creates (or updates) the consumer of partition `p` of an ordered target.
pub async fn ensure_partition_consumer(
    state: &Shared,
    target: &CompiledTarget,
    p: u32,
) -> Result<PullConsumer, sluice_bus::BusError> {
    let names = state.bus.names();
    let config = sluice_bus::streams::ordered_target_consumer(
        names,
        &target.key,
        p,
        ack_wait(target),
        format!(
            "sluice target {}/{}/{} ({}), ordered, partition {p}",
            target.bus,
            target.rule,
            target.id,
            target.destination.kind()
        ),
    );
    let what = format!(
        "consumer of partition {p} of target {}/{}/{}",
        target.bus, target.rule, target.id
    );
    state
        .bus
        .declare_consumer(config, names.deliveries(), &what)
        .await
}

/// Removes a target's consumer and the deliveries still waiting for it.
/// Returns how many were discarded.
pub async fn discard_target(state: &Shared, key: &str) -> Result<u64, sluice_bus::BusError> {
    let names = state.bus.names();
    let js = state.bus.jetstream();
    let stream = js
        .get_stream(names.deliveries())
        .await
        .map_err(|e| sluice_bus::BusError::Request(e.to_string()))?;
    // Its consumer, and its partitions' if it was ordered.
    let consumers = std::iter::once(names.target(key))
        .chain((0..subjects::ORDER_PARTITIONS).map(|p| names.target_partition(key, p)));
    for consumer in consumers {
        match stream.delete_consumer(&consumer).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("not found") => {}
            Err(e) => return Err(sluice_bus::BusError::Request(e.to_string())),
        }
    }
    let mut discarded = 0;
    for subject in subjects::deliver_any(key) {
        let purged = stream
            .purge()
            .filter(names.subject(&subject))
            .await
            .map_err(|e| sluice_bus::BusError::Request(e.to_string()))?;
        discarded += purged.purged;
    }
    if discarded > 0 {
        tracing::warn!(target_key = %key, discarded,
            "target removed: its waiting deliveries were discarded");
        metrics::counter!("sluice.transformer.deliveries.discarded").increment(discarded);
    }
    Ok(discarded)
}

/// Keeps one worker per target until `shutdown`.
pub async fn run(state: Shared, shutdown: CancellationToken) {
    // Hear the replicas already running before taking a share of any limit.
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(crate::presence::SETTLE) => {}
    }
    let mut changes = state.registry.subscribe();
    let mut replicas = state.presence.subscribe();
    let mut running: HashMap<String, Running> = HashMap::new();
    loop {
        let consumers = consumer_names(&state, &shutdown).await;
        reconcile(&state, &mut running, &shutdown, &consumers);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = changes.changed() => if r.is_err() { break },
            r = replicas.changed() => if r.is_err() { break },
        }
    }
    for r in running.values() {
        r.cancel.cancel();
    }
}

/// The consumers of the deliveries stream, tried a few times (a partial
/// list would leave a partition of a target that is no longer ordered
/// without its worker until the next change; an empty one after repeated
/// failures is logged as an error).
async fn consumer_names(state: &Shared, shutdown: &CancellationToken) -> HashSet<String> {
    let names = state.bus.names();
    for attempt in 1.. {
        let listed = async {
            let stream = state
                .bus
                .jetstream()
                .get_stream(names.deliveries())
                .await
                .map_err(|e| e.to_string())?;
            let mut out = HashSet::new();
            let mut list = stream.consumer_names();
            while let Some(name) = list.next().await {
                out.insert(name.map_err(|e| e.to_string())?);
            }
            Ok::<_, String>(out)
        }
        .await;
        match listed {
            Ok(out) => return out,
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, "cannot list the delivery consumers; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return HashSet::new(),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list the delivery consumers: partitions left by targets no longer ordered get no worker until the next change");
                return HashSet::new();
            }
        }
    }
    HashSet::new()
}

fn reconcile(
    state: &Shared,
    running: &mut HashMap<String, Running>,
    shutdown: &CancellationToken,
    consumers: &HashSet<String>,
) {
    let snapshot = state.registry.snapshot();
    let replicas = state.presence.replicas();
    let mut wanted = HashSet::new();
    for t in snapshot.targets() {
        wanted.insert(t.key.clone());
        let fingerprint = (t.fingerprint, replicas);
        if let Some(r) = running.get(&t.key) {
            if r.fingerprint == fingerprint {
                continue;
            }
            r.cancel.cancel();
        }
        let cancel = shutdown.child_token();
        // The unordered consumer always runs: an ordered target drains on it
        // what was stored before it became ordered (or by a replica that has
        // not heard of the change yet).
        tokio::spawn(worker(
            state.clone(),
            t.clone(),
            replicas,
            None,
            cancel.clone(),
        ));
        let names = state.bus.names();
        for p in 0..subjects::ORDER_PARTITIONS {
            let leftover = consumers.contains(&names.target_partition(&t.key, p));
            if t.ordering.is_some() || leftover {
                // A target that was ordered once keeps its partitions'
                // consumers (idle once empty) and their workers, so nothing
                // stored on them, or redriven to them, is stranded.
                tokio::spawn(worker(
                    state.clone(),
                    t.clone(),
                    replicas,
                    Some(p),
                    cancel.clone(),
                ));
            }
        }
        running.insert(
            t.key.clone(),
            Running {
                fingerprint,
                cancel,
            },
        );
    }
    running.retain(|k, r| {
        let keep = wanted.contains(k);
        if !keep {
            r.cancel.cancel();
        }
        keep
    });
    state.bells.retain(&wanted);
    metrics::gauge!("sluice.transformer.targets").set(running.len() as f64);
}

/// Pulls and delivers one target's deliveries (one partition's, for an
/// ordered target: one at a time).
async fn worker(
    state: Shared,
    target: Arc<CompiledTarget>,
    replicas: usize,
    partition: Option<u32>,
    cancel: CancellationToken,
) {
    let (slots_n, streams) = match partition {
        Some(_) => (1, subjects::ORDER_PARTITIONS),
        None => (share(target.max_concurrency, replicas), 1),
    };
    let limiter = target.rate_per_second.and_then(|r| {
        let per_replica = r / replicas.max(1) as f64 / f64::from(streams);
        Quota::with_period(Duration::from_secs_f64(1.0 / per_replica))
            .map(|q| RateLimiter::direct(q.allow_burst(NonZeroU32::MIN)))
    });
    // Pull no more than can start soon, so nothing waits past its ack wait.
    let batch = match target.rate_per_second {
        Some(r) => (r / replicas.max(1) as f64 / f64::from(streams))
            .ceil()
            .clamp(1.0, f64::from(slots_n)) as usize,
        None => slots_n as usize,
    };
    let slots = Arc::new(Semaphore::new(slots_n as usize));
    let pace: Option<Pace> = limiter.map(|l| {
        let l = Arc::new(l);
        Box::new(move || {
            let l = l.clone();
            Box::pin(async move { l.until_ready().await })
                as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        }) as Pace
    });
    let pull = Pull {
        batch,
        what: "a target's deliveries",
    };
    let declare = || {
        let (state, target) = (state.clone(), target.clone());
        async move {
            // A target removed on another replica has had its consumer
            // deleted: declaring it again here would leave an orphan.
            if state.registry.snapshot().target(&target.key).is_none() {
                return Err(sluice_bus::BusError::Declare {
                    what: format!("consumer of target {}", target.key),
                    reason: "the target was removed".into(),
                });
            }
            match partition {
                None => ensure_consumer(&state, &target).await,
                Some(p) => ensure_partition_consumer(&state, &target, p).await,
            }
        }
    };
    let subject = match partition {
        None => subjects::deliver(&target.key),
        Some(p) => subjects::deliver_ordered(&target.key, p),
    };
    let bell = state.bells.bell(&subject);
    keep_pulling_on_demand(declare, pull, slots, pace, &bell, &cancel, |msg, permit| {
        let (state, key) = (state.clone(), target.key.clone());
        state.tracker.clone().spawn(async move {
            deliver_one(&state, &key, msg).await;
            drop(permit);
        });
    })
    .await;
}

fn header<'m>(msg: &'m Message, name: &str) -> Option<&'m str> {
    msg.headers
        .as_ref()
        .and_then(|hm| hm.get(name))
        .map(|v| v.as_str())
}

async fn deliver_one(state: &Shared, key: &str, msg: Message) {
    let started = Instant::now();
    let Some(Facts {
        attempt,
        published,
        stream,
        seq,
    }) = facts(&msg).await
    else {
        return;
    };
    let Some(target) = state.registry.snapshot().target(key).cloned() else {
        // The target was removed; removing it discards its deliveries too.
        metrics::counter!("sluice.transformer.deliveries", "kind" => "unknown", "outcome" => "discarded")
            .increment(1);
        let _ = msg.double_ack().await;
        return;
    };
    let delivery_id = header(&msg, h::DELIVERY_ID)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{stream}-{seq}"));
    let event_id = header(&msg, h::EVENT_ID).unwrap_or_default().to_string();
    let kind = target.destination.kind();
    let span = info_span!(
        "sluice.transformer.deliver",
        otel.name = format!("sluice.transformer.deliver {kind}"),
        bus = %target.bus,
        rule = %target.rule,
        target = %target.id,
        kind,
        delivery_id = %delivery_id,
        attempt,
        trace_id = field::Empty,
    );
    sluice_telemetry::set_parent(&span, sluice_telemetry::nats_context(msg.headers.as_ref()));
    span.record("trace_id", sluice_telemetry::trace_id_of(&span));
    async {
        let meta = Meta {
            delivery_id: &delivery_id,
            event_id: &event_id,
            attempt,
        };
        let outcome = attempt_once(state, &target, &msg, &meta, published).await;
        let age =
            Duration::try_from(time::OffsetDateTime::now_utc() - published).unwrap_or_default();
        let delay = retry::backoff(
            attempt,
            state.config.retry_base,
            state.config.retry_max_delay,
            rand::random::<f64>(),
        );
        let decision = retry::decide(&outcome, attempt, age, &target.retry, delay);
        // The partition's subject, for an ordered target: a redriven dead
        // letter goes back to its message group's partition.
        let subject = state.bus.names().unprefix(msg.subject.as_str()).to_string();
        let dlq_subject = subjects::dlq_target(key);
        let attempted = Attempted {
            msg: &msg,
            subject: &subject,
            dlq_subject: &dlq_subject,
            id: &delivery_id,
            attempt,
            published,
            stream: &stream,
            seq,
        };
        let label = settle(&state.bus, &attempted, &outcome, decision).await;
        if label == "delivered" {
            metrics::histogram!("sluice.transformer.delivery.latency.seconds", "kind" => kind)
                .record(age.as_secs_f64());
        }
        metrics::counter!("sluice.transformer.deliveries", "kind" => kind, "outcome" => label)
            .increment(1);
        metrics::histogram!("sluice.transformer.attempt.duration.seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await;
}

/// Renders the target's input for this event.
fn render(
    state: &Shared,
    target: &CompiledTarget,
    payload: &Bytes,
    published: time::OffsetDateTime,
) -> Result<(Bytes, &'static str), Outcome> {
    match &target.input {
        InputSpec::Event => Ok((payload.clone(), "application/json")),
        InputSpec::Constant(text) => Ok((Bytes::from(text.clone()), "application/json")),
        InputSpec::Transform(input) => {
            let event: serde_json::Value =
                serde_json::from_slice(payload).map_err(|e| Outcome::Terminal {
                    reason: format!("the event is not JSON: {e}"),
                    response: None,
                })?;
            let ctx = Context {
                rule_name: target.rule.clone(),
                rule_arn: rule_arn(
                    &state.config.region,
                    &state.config.account,
                    &target.bus,
                    &target.rule,
                ),
                ingestion_time: published.format(&Rfc3339).unwrap_or_default(),
            };
            let text = input.render(&event, &ctx).map_err(|e| Outcome::Terminal {
                reason: format!("the input cannot be rendered for this event: {e}"),
                response: None,
            })?;
            let ct = if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            Ok((Bytes::from(text), ct))
        }
    }
}

fn delivery_headers(target: &CompiledTarget, meta: &Meta<'_>) -> HeaderMap {
    let mut hm = HeaderMap::new();
    hm.insert(h::DELIVERY_ID, meta.delivery_id);
    hm.insert(h::EVENT_ID, meta.event_id);
    hm.insert(h::BUS, target.bus.as_str());
    hm.insert(h::RULE, target.rule.as_str());
    hm.insert(h::TARGET, target.id.as_str());
    hm
}

async fn attempt_once(
    state: &Shared,
    target: &CompiledTarget,
    msg: &Message,
    meta: &Meta<'_>,
    published: time::OffsetDateTime,
) -> Outcome {
    let (body, content_type) = match render(state, target, &msg.payload, published) {
        Ok(r) => r,
        Err(o) => return o,
    };
    match &target.destination {
        Destination::Http(h) => http::send(state, target, h, meta, body, content_type).await,
        Destination::Queue(name) => {
            match state
                .bus
                .send_to_queue(name, meta.delivery_id, body, delivery_headers(target, meta))
                .await
            {
                Ok(Some(_)) => Outcome::Delivered,
                Ok(None) => Outcome::Terminal {
                    reason: format!("there is no queue named {name:?}"),
                    response: None,
                },
                Err(e @ sluice_bus::BusError::TooLarge { .. }) => Outcome::Terminal {
                    reason: e.to_string(),
                    response: None,
                },
                Err(e) => Outcome::Retry {
                    reason: format!("the queue did not accept the message: {e}"),
                    response: None,
                },
            }
        }
        Destination::Topic(topic) => {
            let message = TopicMessage {
                message: String::from_utf8_lossy(&body).into_owned(),
                subject: None,
                message_attributes: Default::default(),
                origin: Some(format!(
                    "bus/{}/rule/{}/target/{}",
                    target.bus, target.rule, target.id
                )),
            };
            let bytes = serde_json::to_vec(&message).unwrap_or_default();
            match state
                .bus
                .publish(
                    &subjects::notify(topic),
                    meta.delivery_id,
                    bytes.into(),
                    delivery_headers(target, meta),
                )
                .await
            {
                Ok(_) => Outcome::Delivered,
                Err(e @ sluice_bus::BusError::TooLarge { .. }) => Outcome::Terminal {
                    reason: e.to_string(),
                    response: None,
                },
                Err(e) => Outcome::Retry {
                    reason: format!("the topic did not accept the message: {e}"),
                    response: None,
                },
            }
        }
        Destination::Kafka(k) => state.kafka.send(target, k, meta, &msg.payload, body).await,
        Destination::Workflow(wt) => {
            workflow::start(
                state,
                target,
                wt,
                meta,
                String::from_utf8_lossy(&body).into_owned(),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bell_rung_before_the_wait_is_kept_and_removed_targets_lose_theirs() {
        let bells = Bells::default();
        let kept = bells.bell(&subjects::deliver("a/b/c"));
        let ordered = bells.bell(&subjects::deliver_ordered("a/b/c", 3));
        let gone = bells.bell(&subjects::deliver("x/y/z"));
        bells.ring(&subjects::deliver("a/b/c"));
        bells.ring(&subjects::deliver_ordered("a/b/c", 3));
        bells.ring("deliver.nobody");
        tokio::time::timeout(Duration::from_secs(1), kept.notified())
            .await
            .expect("the ring before the wait is kept");
        tokio::time::timeout(Duration::from_secs(1), ordered.notified())
            .await
            .expect("a partition's bell");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), gone.notified())
                .await
                .is_err(),
            "another subject's ring wakes nobody else"
        );
        bells.retain(&HashSet::from(["a/b/c".to_string()]));
        let left: HashSet<String> = bells.0.lock().unwrap().keys().cloned().collect();
        assert_eq!(
            left,
            HashSet::from([
                subjects::deliver("a/b/c"),
                subjects::deliver_ordered("a/b/c", 3)
            ])
        );
    }
}
