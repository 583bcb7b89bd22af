//! Delivery to `http`, `https`, `email` and `email-json` subscriptions.
//!
//! The fan-out leaves each such subscription's copy on the deliveries
//! stream, on the subscription's own subject (`deliver.<key>`); every
//! subscription has its own durable consumer there, so its backlog, its
//! retries and its concurrency are its own and a slow or failing endpoint
//! holds back no other subscription. Confirmation requests travel the same
//! way, before the subscription is confirmed.
//!
//! Every replica runs one worker per subscription on the shared consumer.
//! A worker pulls no more than it may run at once (the subscription's
//! `max_concurrency`), delivers each, and settles it: ack on success,
//! `Nak(backoff)` while the retry policy allows, otherwise the
//! subscription's dead-letter queue (`dlq.subscription.<key>`, listed by
//! `GET /v1/dlq` and redrivable) with the reason, the attempts and the
//! last response, then ack.
//!
//! Which subscriptions exist is read from the store at start, when a
//! subscription changes (a notice on `control.subscriptions` from the
//! replica that changed it) and every `SLUICE_NOTIFIER_RELOAD_INTERVAL`;
//! the fan-out reads the same in-memory view ([`Registry`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::Message;
use bytes::Bytes;
use futures::StreamExt as _;
use prost::Message as _;
use sluice_bus::work::{keep_pulling, Pull};
use sluice_bus::{headers as h, subjects, BusError};
use sluice_outbound::retry::{self, Outcome};
use sluice_proto::v1;
use sluice_runtime::settle::{facts, settle, Attempted, Facts};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{field, info_span, Instrument};

use crate::email::Mail;
use crate::subscriptions::{delivered, is_email, Compiled};
use crate::webhook::Delivery;
use crate::Shared;

/// A subscription delivered to, as last read.
#[derive(Debug)]
pub struct Live {
    /// Names its subject, consumer and dead letters.
    pub key: String,
    /// The subscription.
    pub sub: Compiled,
    /// Changes when the stored subscription does.
    pub fingerprint: u64,
}

/// Every subscription, as last read.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// The http(s) and email subscriptions (delivered by a worker), by key.
    pub delivered: HashMap<String, Arc<Live>>,
    /// Every confirmed subscription of each topic, as the fan-out reads them.
    pub by_topic: HashMap<String, Vec<Arc<Live>>>,
}

/// A shared view of [`Subscriptions`].
pub type Snapshot = Arc<Subscriptions>;

/// The subscriptions this notifier knows: read from the store at start and
/// after every change, so neither the fan-out nor the workers read the
/// store per message.
#[derive(Debug)]
pub struct Registry {
    tx: watch::Sender<Snapshot>,
    loaded: watch::Sender<bool>,
    /// One reload at a time, so an older read never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            tx: watch::channel(Snapshot::default()).0,
            loaded: watch::channel(false).0,
            reloading: tokio::sync::Mutex::new(()),
        }
    }
}

/// Changes when a subscription or its topic's delivery policy does.
fn fingerprint(spec: &[u8], topic_policy: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    spec.hash(&mut h);
    topic_policy.hash(&mut h);
    h.finish()
}

impl Registry {
    /// The subscriptions as last read.
    pub fn snapshot(&self) -> Snapshot {
        self.tx.borrow().clone()
    }

    /// Waits until the subscriptions have been read once.
    pub async fn wait_loaded(&self) {
        let mut rx = self.loaded.subscribe();
        let _ = rx.wait_for(|l| *l).await;
    }

    /// Reads every subscription again.
    pub async fn reload(&self, state: &crate::State) -> Result<(), sluice_store::StoreError> {
        let _one = self.reloading.lock().await;
        let records = state.store.all_subscriptions().await?;
        // Each topic's delivery policy: the defaults of its subscriptions.
        let topic_policies: HashMap<String, v1::DeliveryPolicy> = state
            .store
            .topics()
            .await?
            .into_iter()
            .filter_map(|rec| {
                let t = v1::Topic::decode(rec.spec.as_slice()).ok()?;
                Some((rec.name, t.delivery_policy?))
            })
            .collect();
        let mut subs = Subscriptions::default();
        for rec in records {
            let spec = match v1::Subscription::decode(rec.spec.as_slice()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(topic = %rec.topic, subscription = %rec.id, error = %e,
                        "a stored subscription cannot be read; nothing is delivered to it");
                    metrics::counter!("sluice.notifier.fanout", "outcome" => "unreadable_subscription")
                        .increment(1);
                    continue;
                }
            };
            let key = subjects::subscription_key(&rec.topic, &rec.id);
            let topic_policy = topic_policies.get(&rec.topic).copied().unwrap_or_default();
            let live = match Compiled::new(spec) {
                Ok(sub) => Arc::new(Live {
                    key: key.clone(),
                    sub: sub.with_topic_policy(topic_policy),
                    fingerprint: fingerprint(&rec.spec, &topic_policy.encode_to_vec()),
                }),
                Err(e) => {
                    tracing::error!(topic = %rec.topic, subscription = %rec.id, error = %e,
                        "a stored subscription cannot be compiled; nothing is delivered to it");
                    metrics::counter!("sluice.notifier.fanout", "outcome" => "unreadable_subscription")
                        .increment(1);
                    continue;
                }
            };
            if live.sub.spec.status == crate::grpc::CONFIRMED {
                subs.by_topic
                    .entry(rec.topic.clone())
                    .or_default()
                    .push(live.clone());
            }
            if delivered(&live.sub.spec.protocol) {
                subs.delivered.insert(key, live);
            }
        }
        metrics::gauge!("sluice.notifier.subscriptions.delivered").set(subs.delivered.len() as f64);
        self.tx.send_replace(Arc::new(subs));
        self.loaded.send_replace(true);
        Ok(())
    }

    fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.tx.subscribe()
    }
}

/// Tells every replica (this one included) that a subscription changed.
/// If this replica cannot read the subscriptions now, its periodic reload
/// catches up (the change itself is stored).
pub async fn announce(state: &crate::State, topic: &str, id: &str) {
    if let Err(e) = state.registry.reload(state).await {
        tracing::warn!(error = %e, "cannot read the subscriptions again; the next reload will");
    }
    let subject = state.bus.names().subject(subjects::CONTROL_SUBSCRIPTIONS);
    if let Err(e) = state
        .bus
        .client()
        .publish(subject, format!("{topic}/{id}").into())
        .await
    {
        tracing::warn!(error = %e, "cannot tell the other replicas; they reload within SLUICE_NOTIFIER_RELOAD_INTERVAL");
    }
}

/// Removes a subscription's consumer and the deliveries still waiting for
/// it. Returns how many were discarded.
pub async fn discard(state: &crate::State, key: &str) -> Result<u64, BusError> {
    let names = state.bus.names();
    let stream = state
        .bus
        .jetstream()
        .get_stream(names.deliveries())
        .await
        .map_err(|e| BusError::Request(e.to_string()))?;
    match stream.delete_consumer(&names.subscription(key)).await {
        Ok(_) => {}
        Err(e) if e.to_string().contains("not found") => {}
        Err(e) => return Err(BusError::Request(e.to_string())),
    }
    let purged = stream
        .purge()
        .filter(names.subject(&subjects::deliver(key)))
        .await
        .map_err(|e| BusError::Request(e.to_string()))?;
    if purged.purged > 0 {
        tracing::info!(subscription_key = %key, discarded = purged.purged,
            "subscription removed: its waiting deliveries were discarded");
        metrics::counter!("sluice.notifier.deliveries.discarded").increment(purged.purged);
    }
    Ok(purged.purged)
}

/// Keeps the registry fresh and one worker per subscription until `shutdown`.
pub async fn run(state: Shared, shutdown: CancellationToken) {
    let notices = state
        .bus
        .client()
        .subscribe(state.bus.names().subject(subjects::CONTROL_SUBSCRIPTIONS))
        .await;
    let mut notices = match notices {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot hear subscription notices; reloading on the interval only");
            None
        }
    };
    // The fan-out waits for this first read: retry until the store answers.
    while let Err(e) = state.registry.reload(&state).await {
        tracing::warn!(error = %e, "cannot read the subscriptions yet; will retry");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    let mut changes = state.registry.subscribe();
    let mut tick = tokio::time::interval(state.config.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running: HashMap<String, (u64, CancellationToken)> = HashMap::new();
    loop {
        reconcile(&state, &mut running, &shutdown);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = changes.changed() => if r.is_err() { break },
            _ = tick.tick() => {
                if let Err(e) = state.registry.reload(&state).await {
                    tracing::warn!(error = %e, "cannot read the subscriptions again; will retry");
                }
            }
            n = async {
                match notices.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => {
                if n.is_some() {
                    if let Err(e) = state.registry.reload(&state).await {
                        tracing::warn!(error = %e, "cannot read the subscriptions again; will retry");
                    }
                } else {
                    tracing::warn!("subscription notices ended; reloading on the interval only");
                    notices = None;
                }
            }
        }
    }
    for (_, cancel) in running.values() {
        cancel.cancel();
    }
}

fn reconcile(
    state: &Shared,
    running: &mut HashMap<String, (u64, CancellationToken)>,
    shutdown: &CancellationToken,
) {
    let snapshot = state.registry.snapshot();
    for (key, live) in snapshot.delivered.iter() {
        if let Some((fp, cancel)) = running.get(key) {
            if *fp == live.fingerprint {
                continue;
            }
            cancel.cancel();
        }
        let cancel = shutdown.child_token();
        tokio::spawn(worker(state.clone(), live.clone(), cancel.clone()));
        running.insert(key.clone(), (live.fingerprint, cancel));
    }
    running.retain(|k, (_, cancel)| {
        let keep = snapshot.delivered.contains_key(k);
        if !keep {
            cancel.cancel();
        }
        keep
    });
    metrics::gauge!("sluice.notifier.workers").set(running.len() as f64);
}

async fn worker(state: Shared, live: Arc<Live>, cancel: CancellationToken) {
    let concurrency = live.sub.concurrency(&state.config.delivery);
    let timeout = live.sub.timeout(&state.config.delivery);
    let slots = Arc::new(Semaphore::new(concurrency as usize));
    let pull = Pull {
        batch: concurrency as usize,
        what: "a subscription's deliveries",
    };
    let declare = || {
        let (state, live) = (state.clone(), live.clone());
        async move {
            // Removed on another replica: its consumer was deleted, and
            // declaring it again here would leave an orphan.
            if !state.registry.snapshot().delivered.contains_key(&live.key) {
                return Err(BusError::Declare {
                    what: format!("consumer of subscription {}", live.sub.spec.subscription_id),
                    reason: "the subscription was removed".into(),
                });
            }
            let names = state.bus.names();
            let config = sluice_bus::streams::subscription_consumer(
                names,
                &live.key,
                timeout * 2 + Duration::from_secs(5),
                state.config.max_pending,
                format!(
                    "sluice subscription {}/{} ({})",
                    live.sub.spec.topic, live.sub.spec.subscription_id, live.sub.spec.protocol
                ),
            );
            let what = format!(
                "consumer of subscription {}/{}",
                live.sub.spec.topic, live.sub.spec.subscription_id
            );
            state
                .bus
                .declare_consumer(config, names.deliveries(), &what)
                .await
        }
    };
    keep_pulling(declare, pull, slots, None, &cancel, |msg, permit| {
        let (state, key) = (state.clone(), live.key.clone());
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
    let Some(live) = state.registry.snapshot().delivered.get(key).cloned() else {
        // Removed: removing it discards its deliveries too.
        metrics::counter!("sluice.notifier.deliveries", "protocol" => "unknown", "outcome" => "discarded")
            .increment(1);
        let _ = msg.double_ack().await;
        return;
    };
    let sub = &live.sub;
    let protocol = sub.spec.protocol.clone();
    if header(&msg, h::MESSAGE_TYPE).unwrap_or("Notification") != "SubscriptionConfirmation"
        && sub.spec.status != crate::grpc::CONFIRMED
    {
        // This replica may not have heard of a confirmation yet: the store
        // decides. Confirmed there: try again once the view catches up.
        // Not confirmed: a copy left from before an unsubscribe, for an
        // endpoint that subscribed again and has not confirmed; it gets
        // nothing yet.
        let stored = state
            .store
            .get_subscription(&sub.spec.topic, &sub.spec.subscription_id)
            .await;
        let confirmed = match &stored {
            Ok(Some(rec)) => v1::Subscription::decode(rec.spec.as_slice())
                .map(|s| s.status == crate::grpc::CONFIRMED)
                .unwrap_or(false),
            Ok(None) => false,
            Err(_) => true,
        };
        if confirmed {
            if let Err(e) = state.registry.reload(state).await {
                tracing::warn!(error = %e, "cannot read the subscriptions again; will retry");
            }
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
                .await;
            return;
        }
        metrics::counter!("sluice.notifier.deliveries", "protocol" => protocol, "outcome" => "unconfirmed")
            .increment(1);
        let _ = msg.double_ack().await;
        return;
    }
    // Stable through retries and redrives: the webhook-id.
    let id = header(&msg, h::DELIVERY_ID)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{stream}-{seq}"));
    let kind = header(&msg, h::MESSAGE_TYPE)
        .unwrap_or("Notification")
        .to_string();
    let span = info_span!(
        "sluice.notifier.deliver",
        otel.name = format!("sluice.notifier.deliver {protocol}"),
        topic = %sub.spec.topic,
        subscription = %sub.spec.subscription_id,
        protocol = %protocol,
        kind = %kind,
        delivery_id = %id,
        attempt,
        trace_id = field::Empty,
    );
    sluice_telemetry::set_parent(&span, sluice_telemetry::nats_context(msg.headers.as_ref()));
    span.record("trace_id", sluice_telemetry::trace_id_of(&span));
    async {
        let outcome = attempt_once(state, sub, &msg, &id, &kind, attempt).await;
        let age =
            Duration::try_from(time::OffsetDateTime::now_utc() - published).unwrap_or_default();
        let delay = retry::backoff(
            attempt,
            state.config.retry_base,
            state.config.retry_max_delay,
            rand::random::<f64>(),
        );
        let policy = sub.retry(&state.config.delivery);
        let decision = retry::decide(&outcome, attempt, age, &policy, delay);
        let subject = subjects::deliver(key);
        let dlq_subject = subjects::dlq_subscription(key);
        let attempted = Attempted {
            msg: &msg,
            subject: &subject,
            dlq_subject: &dlq_subject,
            id: &id,
            attempt,
            published,
            stream: &stream,
            seq,
        };
        let label = settle(&state.bus, &attempted, &outcome, decision).await;
        if label == "delivered" {
            metrics::histogram!("sluice.notifier.delivery.latency.seconds", "protocol" => protocol.clone())
                .record(age.as_secs_f64());
        }
        metrics::counter!("sluice.notifier.deliveries", "protocol" => protocol.clone(), "outcome" => label)
            .increment(1);
        metrics::histogram!("sluice.notifier.attempt.duration.seconds", "protocol" => protocol.clone())
            .record(started.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await;
}

async fn attempt_once(
    state: &Shared,
    sub: &Compiled,
    msg: &Message,
    id: &str,
    kind: &str,
    attempt: u32,
) -> Outcome {
    let confirmation = kind == "SubscriptionConfirmation";
    if is_email(&sub.spec.protocol) {
        let Some(mailer) = &state.mailer else {
            return Outcome::Retry {
                reason: "email is not set up on this notifier (SLUICE_SMTP_URL)".into(),
                response: None,
            };
        };
        let topic = match state.store.topic(&sub.spec.topic).await {
            Ok(t) => t,
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("cannot read the topic: {e}"),
                    response: None,
                }
            }
        };
        let display = topic
            .and_then(|t| v1::Topic::decode(t.spec.as_slice()).ok())
            .map(|t| t.display_name)
            .filter(|d| !d.is_empty());
        let unsubscribe = crate::links::unsubscribe(state, &sub.spec);
        let (subject, text) = if confirmation {
            let confirm = crate::links::confirm(state, &sub.spec);
            (
                format!("Confirm your subscription to {}", sub.spec.topic),
                format!(
                    "You were subscribed to the topic {topic} ({arn}).\n\n\
                     To confirm and start receiving its messages, open:\n{confirm}\n\n\
                     If you did not ask for this, ignore this email: nothing will be sent to you.\n",
                    topic = sub.spec.topic,
                    arn = state.config.topic_arn(&sub.spec.topic),
                ),
            )
        } else {
            let subject = header(msg, h::MESSAGE_SUBJECT)
                .map(str::to_string)
                .or_else(|| display.clone())
                .unwrap_or_else(|| "sluice notification".into());
            let body = String::from_utf8_lossy(&msg.payload);
            // email-json is the notification JSON alone (its UnsubscribeURL
            // is the link); plain email gets the link as a footer.
            let text = if sub.spec.protocol == "email-json" {
                body.into_owned()
            } else {
                format!(
                    "{body}\n\n--\nYou are subscribed to the topic {topic}.\n\
                     To stop receiving these emails: {unsubscribe}\n",
                    topic = sub.spec.topic,
                )
            };
            (subject, text)
        };
        let mail = Mail {
            to: &sub.spec.endpoint,
            from_name: display.as_deref(),
            subject: &subject,
            text,
            unsubscribe: (!confirmation).then_some(unsubscribe.as_str()),
            delivery_id: id,
        };
        // The whole send within the subscription's timeout (lettre's own
        // applies per SMTP command), so it never outlives the ack wait.
        let timeout = sub.timeout(&state.config.delivery);
        return match tokio::time::timeout(timeout, mailer.send(&mail)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Retry {
                reason: format!(
                    "the SMTP server did not take the email within {}s",
                    timeout.as_secs()
                ),
                response: None,
            },
        };
    }
    let content_type = if confirmation || !sub.spec.raw_message_delivery {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let d = Delivery {
        id,
        kind,
        body: Bytes::clone(&msg.payload),
        content_type,
        attempt,
        message_id: header(msg, h::MESSAGE_ID),
    };
    crate::webhook::send(state, sub, &d).await
}
