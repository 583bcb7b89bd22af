//! Stream and consumer definitions: the one place their limits are set.
//!
//! | SQS                    | sluice (JetStream)                                   |
//! |------------------------|------------------------------------------------------|
//! | queue                  | `INGEST` work-queue stream on file storage           |
//! | visibility timeout     | consumer `ack_wait`                                  |
//! | maxReceiveCount        | `SLUICE_QUEUE_MAX_RECEIVE`, enforced by the processor |
//! | retry delay            | `Nak(delay)` from `SLUICE_QUEUE_BACKOFF`             |
//! | retention (14 days)    | stream `max_age`                                     |
//! | dead-letter queue      | `DLQ` stream, subjects `dlq.<queue>`                 |
//! | content de-duplication | `Nats-Msg-Id` within `duplicate_window`              |
//!
//! `max_deliver` on the consumer is left unlimited on purpose: the processor
//! counts deliveries and dead-letters a message itself once they run out. A
//! server-side limit would leave a message whose last delivery crashed the
//! processor stranded in the work queue, neither processed nor dead-lettered.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use serde::Serialize;
use sluice_config::{serialize_duration, serialize_durations, ConfigError, Env};

/// Queue behaviour users tune. Variables: `SLUICE_QUEUE_*`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueConfig {
    /// `SLUICE_QUEUE_VISIBILITY_TIMEOUT`: how long a delivered message stays
    /// invisible before it is redelivered (consumer ack wait). Default 30s, as SQS.
    #[serde(serialize_with = "serialize_duration")]
    pub visibility_timeout: Duration,
    /// `SLUICE_QUEUE_MAX_RECEIVE`: deliveries before a message is dead-lettered
    /// (SQS maxReceiveCount). Default 5.
    pub max_receive: u32,
    /// `SLUICE_QUEUE_BACKOFF`: delays before retry n (the last repeats). Default `1s,5s,30s,2m`.
    #[serde(serialize_with = "serialize_durations")]
    pub backoff: Vec<Duration>,
    /// `SLUICE_QUEUE_MAX_ACK_PENDING`: messages the processors may hold unacknowledged. Default 1000.
    pub max_ack_pending: i64,
    /// `SLUICE_QUEUE_RETENTION`: how long an unprocessed message is kept. Default 14d, as SQS's maximum.
    #[serde(serialize_with = "serialize_duration")]
    pub retention: Duration,
    /// `SLUICE_QUEUE_MAX_BYTES`: size limit of the ingest stream; when full, new
    /// events are refused (503), never old ones dropped. Default 1GiB.
    pub max_bytes: u64,
    /// `SLUICE_QUEUE_DEDUPE_WINDOW`: how long a `Nats-Msg-Id` is remembered. Default 2m.
    #[serde(serialize_with = "serialize_duration")]
    pub dedupe_window: Duration,
    /// `SLUICE_DLQ_RETENTION`: how long dead letters are kept. Default 14d.
    #[serde(serialize_with = "serialize_duration")]
    pub dlq_retention: Duration,
    /// `SLUICE_BUS_RETENTION`: how long bus events are kept (the archive). Default 7d.
    #[serde(serialize_with = "serialize_duration")]
    pub bus_retention: Duration,
    /// `SLUICE_TARGET_MAX_BACKLOG`: deliveries one rule target may have
    /// waiting. Past it, a new delivery to that target is dead-lettered, so a
    /// dead target can never fill the deliveries stream for the others.
    /// Default 100000.
    pub target_max_backlog: i64,
}

impl QueueConfig {
    /// Reads `SLUICE_QUEUE_*`, `SLUICE_DLQ_*` and `SLUICE_BUS_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let backoff = env.durations(
            "SLUICE_QUEUE_BACKOFF",
            &[
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120),
            ],
        )?;
        if backoff.is_empty() {
            return Err(ConfigError::new(
                "SLUICE_QUEUE_BACKOFF",
                "needs at least one delay",
            ));
        }
        let visibility_timeout =
            env.duration("SLUICE_QUEUE_VISIBILITY_TIMEOUT", Duration::from_secs(30))?;
        if visibility_timeout < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "SLUICE_QUEUE_VISIBILITY_TIMEOUT",
                "must be at least 1s",
            ));
        }
        let dedupe_window = env.duration("SLUICE_QUEUE_DEDUPE_WINDOW", Duration::from_secs(120))?;
        let retention = env.duration("SLUICE_QUEUE_RETENTION", Duration::from_secs(14 * 86_400))?;
        if dedupe_window > retention {
            return Err(ConfigError::new(
                "SLUICE_QUEUE_DEDUPE_WINDOW",
                "must not be longer than SLUICE_QUEUE_RETENTION",
            ));
        }
        Ok(Self {
            visibility_timeout,
            max_receive: env.number("SLUICE_QUEUE_MAX_RECEIVE", 5, 1..=1000)?,
            backoff,
            max_ack_pending: env.number("SLUICE_QUEUE_MAX_ACK_PENDING", 1000, 1..=1_000_000)?,
            retention,
            max_bytes: env.bytes("SLUICE_QUEUE_MAX_BYTES", 1 << 30)?,
            dedupe_window,
            dlq_retention: env
                .duration("SLUICE_DLQ_RETENTION", Duration::from_secs(14 * 86_400))?,
            bus_retention: env.duration("SLUICE_BUS_RETENTION", Duration::from_secs(7 * 86_400))?,
            target_max_backlog: env.number(
                "SLUICE_TARGET_MAX_BACKLOG",
                100_000,
                1..=100_000_000,
            )?,
        })
    }

    /// The delay before the retry that follows delivery `delivered` (1-based).
    pub fn retry_delay(&self, delivered: u32) -> Duration {
        let i = (delivered.max(1) as usize - 1).min(self.backoff.len() - 1);
        self.backoff[i]
    }
}

/// Stream and consumer names, with an optional prefix so several
/// environments (or tests) can share one server.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names with `prefix` (may be empty).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect(),
        }
    }
    /// The ingest work-queue stream.
    pub fn ingest(&self) -> String {
        format!("{}INGEST", self.prefix)
    }
    /// The dead-letter stream.
    pub fn dlq(&self) -> String {
        format!("{}DLQ", self.prefix)
    }
    /// The bus stream.
    pub fn bus(&self) -> String {
        format!("{}BUS", self.prefix)
    }
    /// The processor's durable consumer.
    pub fn processor(&self) -> String {
        format!("{}processor", self.prefix)
    }
    /// Deliveries waiting for their targets (one subject per target).
    pub fn deliveries(&self) -> String {
        format!("{}DELIVERIES", self.prefix)
    }
    /// Messages published to topics, waiting for the notifier.
    pub fn notify(&self) -> String {
        format!("{}NOTIFY", self.prefix)
    }
    /// Messages published to FIFO topics, waiting for the notifier.
    pub fn notify_fifo(&self) -> String {
        format!("{}NOTIFY_FIFO", self.prefix)
    }
    /// The notifier's durable consumer of one FIFO partition.
    pub fn fanout_fifo(&self, partition: u32) -> String {
        format!("{}notifier_fifo_{partition}", self.prefix)
    }
    /// Object store notifications, waiting for file-ingest.
    pub fn files(&self) -> String {
        format!("{}FILES", self.prefix)
    }
    /// file-ingest's durable consumer.
    pub fn file_ingest(&self) -> String {
        format!("{}file_ingest", self.prefix)
    }
    /// The transformer's durable consumer on the bus (the router).
    pub fn router(&self) -> String {
        format!("{}transformer", self.prefix)
    }
    /// The notifier's durable consumer on topic messages (the fan-out).
    pub fn fanout(&self) -> String {
        format!("{}notifier", self.prefix)
    }
    /// The durable consumer of one target's deliveries.
    pub fn target(&self, key: &str) -> String {
        format!("{}target_{key}", self.prefix)
    }
    /// The durable consumer of partition `p` of an ordered target.
    pub fn target_partition(&self, key: &str, p: u32) -> String {
        format!("{}target_{key}_{p}", self.prefix)
    }
    /// The durable consumer of one subscription's deliveries.
    pub fn subscription(&self, key: &str) -> String {
        format!("{}sub_{key}", self.prefix)
    }
    /// The stream of the sluice queue `name`.
    pub fn queue_stream(&self, name: &str) -> String {
        format!("{}QUEUE_{name}", self.prefix)
    }
    /// The durable consumer of the sluice queue `name`.
    pub fn queue_consumer(&self, name: &str) -> String {
        format!("{}queue_{name}", self.prefix)
    }
    /// `subject` under this prefix (streams of different prefixes must not overlap).
    pub fn subject(&self, subject: &str) -> String {
        if self.prefix.is_empty() {
            subject.to_string()
        } else {
            format!("{}.{subject}", self.prefix)
        }
    }
    /// A received subject without the prefix.
    pub fn unprefix<'a>(&self, subject: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            subject
        } else {
            subject
                .strip_prefix(self.prefix.as_str())
                .and_then(|s| s.strip_prefix('.'))
                .unwrap_or(subject)
        }
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What every sluice stream shares: file storage, a size limit, 1 MiB
/// messages, the de-duplication window, replicas, direct gets.
fn stream(
    name: String,
    subject: &str,
    names: &Names,
    q: &QueueConfig,
    replicas: usize,
    description: &str,
) -> Config {
    Config {
        name,
        subjects: vec![names.subject(subject)],
        storage: StorageType::File,
        max_bytes: clamp_i64(q.max_bytes),
        max_message_size: 1 << 20,
        duplicate_window: q.dedupe_window,
        num_replicas: replicas,
        allow_direct: true,
        description: Some(description.into()),
        ..Default::default()
    }
}

/// The ingest work queue: each message is consumed once by the processor's
/// durable consumer and removed when acknowledged. Full → refuse new (never
/// drop accepted events). Direct gets by subject answer "is this event
/// still queued?".
pub fn ingest_stream(names: &Names, q: &QueueConfig, replicas: usize) -> Config {
    Config {
        retention: RetentionPolicy::WorkQueue,
        discard: DiscardPolicy::New,
        max_age: q.retention,
        ..stream(
            names.ingest(),
            crate::subjects::INGEST_ALL,
            names,
            q,
            replicas,
            "sluice ingest work queue",
        )
    }
}

/// Dead letters: kept for `dlq_retention`, listed by direct get. Full → refuse
/// new dead letters (the processor then keeps retrying) rather than drop old.
/// A dead letter is the original plus its reason: up to 2 MiB.
pub fn dlq_stream(names: &Names, q: &QueueConfig, replicas: usize) -> Config {
    Config {
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        max_age: q.dlq_retention,
        max_message_size: 2 << 20,
        ..stream(
            names.dlq(),
            crate::subjects::DLQ_ALL,
            names,
            q,
            replicas,
            "sluice dead letters",
        )
    }
}

/// The event bus: domain events, kept as the archive for `bus_retention`;
/// full, it drops the oldest.
pub fn bus_stream(names: &Names, q: &QueueConfig, replicas: usize) -> Config {
    Config {
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        max_age: q.bus_retention,
        ..stream(
            names.bus(),
            crate::subjects::BUS_ALL,
            names,
            q,
            replicas,
            "sluice event bus and archive",
        )
    }
}

/// Deliveries: one message per (event, rule, target) or (topic message,
/// https or email subscription), on the target's or subscription's own
/// subject, consumed by that target's own consumer (so one target's
/// backlog or failures hold back no other), removed when delivered. A
/// target's subject full → that delivery is refused (the router
/// dead-letters it); the whole stream full → every delivery is refused (the
/// router retries; the bus keeps the event meanwhile).
pub fn deliveries_stream(names: &Names, q: &QueueConfig, replicas: usize) -> Config {
    Config {
        retention: RetentionPolicy::WorkQueue,
        discard: DiscardPolicy::New,
        max_age: q.retention,
        // Each target's backlog is bounded on its own.
        max_messages_per_subject: q.target_max_backlog,
        discard_new_per_subject: true,
        ..stream(
            names.deliveries(),
            crate::subjects::DELIVER_ALL,
            names,
            q,
            replicas,
            "sluice deliveries to rule targets",
        )
    }
}

/// Topic messages (`notify.<topic>`), a work queue for the notifier. Full →
/// refuse new (the publisher retries).
pub fn notify_stream(names: &Names, q: &QueueConfig, replicas: usize) -> Config {
    Config {
        retention: RetentionPolicy::WorkQueue,
        discard: DiscardPolicy::New,
        max_age: q.retention,
        ..stream(
            names.notify(),
            crate::subjects::NOTIFY_ALL,
            names,
            q,
            replicas,
            "sluice topic messages",
        )
    }
}

/// Object store notifications (`files.<bucket>`, the S3 event format), a
/// work queue for file-ingest: kept until file-ingest has started the
/// object's pipeline, so none is lost while it is down. Full → refuse new
/// (the object store keeps them in its own queue and retries).
pub fn files_stream(names: &Names, q: &QueueConfig, replicas: usize) -> Config {
    Config {
        retention: RetentionPolicy::WorkQueue,
        discard: DiscardPolicy::New,
        max_age: q.retention,
        ..stream(
            names.files(),
            crate::subjects::FILES_ALL,
            names,
            q,
            replicas,
            "sluice object store notifications",
        )
    }
}

/// file-ingest's consumer: every notification once, acknowledged when the
/// pipelines of its objects are started.
pub fn file_ingest_consumer(
    names: &Names,
    ack_wait: Duration,
    max_ack_pending: i64,
) -> pull::Config {
    pull::Config {
        durable_name: Some(names.file_ingest()),
        description: Some("sluice file-ingest: starts the pipeline of each uploaded object".into()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        max_deliver: -1,
        max_ack_pending,
        filter_subject: names.subject(crate::subjects::FILES_ALL),
        ..Default::default()
    }
}

/// How long a FIFO topic remembers a message's de-duplication id: SNS's
/// five minutes.
pub const FIFO_DEDUPE_WINDOW: Duration = Duration::from_secs(300);

/// FIFO topic messages (`fifo.<partition>.<topic>`), a work queue for the
/// notifier whose `Nats-Msg-Id` is the message's de-duplication id, kept
/// for [`FIFO_DEDUPE_WINDOW`]. Full → refuse new (the publisher retries).
pub fn notify_fifo_stream(names: &Names, q: &QueueConfig, replicas: usize) -> Config {
    Config {
        retention: RetentionPolicy::WorkQueue,
        discard: DiscardPolicy::New,
        max_age: q.retention,
        duplicate_window: FIFO_DEDUPE_WINDOW.min(q.retention),
        ..stream(
            names.notify_fifo(),
            crate::subjects::FIFO_ALL,
            names,
            q,
            replicas,
            "sluice FIFO topic messages",
        )
    }
}

/// The notifier's consumer of one FIFO partition: one message at a time
/// (`max_ack_pending` 1, whatever the number of replicas), so the messages
/// of a group are fanned out in the order they were stored, and one that
/// cannot be holds back only its own partition.
pub fn fanout_fifo_consumer(names: &Names, partition: u32, ack_wait: Duration) -> pull::Config {
    pull::Config {
        durable_name: Some(names.fanout_fifo(partition)),
        description: Some(format!(
            "sluice notifier: fans out FIFO topic messages of partition {partition}, in order"
        )),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        max_deliver: -1,
        max_ack_pending: 1,
        filter_subject: names.subject(&crate::subjects::fifo_of_partition(partition)),
        ..Default::default()
    }
}

/// The router's durable consumer on the bus. Created once with
/// `DeliverPolicy::New`: rules see the events that arrive after the
/// transformer first started, as EventBridge rules see events published
/// after they exist; from then on it resumes where it stopped.
pub fn router_consumer(names: &Names, ack_wait: Duration, max_ack_pending: i64) -> pull::Config {
    pull::Config {
        durable_name: Some(names.router()),
        description: Some("sluice transformer: routes bus events to targets".into()),
        deliver_policy: DeliverPolicy::New,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        max_deliver: -1,
        max_ack_pending,
        filter_subject: names.subject(crate::subjects::BUS_ALL),
        ..Default::default()
    }
}

/// The notifier's fan-out consumer on topic messages: every message once
/// (a work queue), acknowledged when each subscription has it.
pub fn fanout_consumer(names: &Names, ack_wait: Duration, max_ack_pending: i64) -> pull::Config {
    pull::Config {
        durable_name: Some(names.fanout()),
        description: Some("sluice notifier: fans topic messages out to subscriptions".into()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        max_deliver: -1,
        max_ack_pending,
        filter_subject: names.subject(crate::subjects::NOTIFY_ALL),
        ..Default::default()
    }
}

/// One target's durable consumer: its own backlog, retries and pending
/// limit. `max_deliver` is unlimited: the transformer applies the target's
/// retry policy and dead-letters (as the processor does, decision 0001).
pub fn target_consumer(
    names: &Names,
    key: &str,
    ack_wait: Duration,
    max_ack_pending: i64,
    description: String,
) -> pull::Config {
    delivery_consumer(
        names.target(key),
        names,
        key,
        ack_wait,
        max_ack_pending,
        description,
    )
}

/// The consumer of partition `p` of an ordered target: one delivery at a
/// time (`max_ack_pending` 1), so a message group's deliveries are made in
/// the order they were stored, across every replica, redeliveries
/// included; a delivery waiting for its retry holds back only its
/// partition.
pub fn ordered_target_consumer(
    names: &Names,
    key: &str,
    p: u32,
    ack_wait: Duration,
    description: String,
) -> pull::Config {
    pull::Config {
        filter_subject: names.subject(&crate::subjects::deliver_ordered(key, p)),
        ..delivery_consumer(
            names.target_partition(key, p),
            names,
            key,
            ack_wait,
            1,
            description,
        )
    }
}

/// One https or email subscription's durable consumer, on the deliveries
/// stream like a target's (`key` from `subjects::subscription_key`): its
/// own backlog, retries and pending limit.
pub fn subscription_consumer(
    names: &Names,
    key: &str,
    ack_wait: Duration,
    max_ack_pending: i64,
    description: String,
) -> pull::Config {
    delivery_consumer(
        names.subscription(key),
        names,
        key,
        ack_wait,
        max_ack_pending,
        description,
    )
}

fn delivery_consumer(
    durable: String,
    names: &Names,
    key: &str,
    ack_wait: Duration,
    max_ack_pending: i64,
    description: String,
) -> pull::Config {
    pull::Config {
        durable_name: Some(durable),
        description: Some(description),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        max_deliver: -1,
        max_ack_pending,
        filter_subject: names.subject(&crate::subjects::deliver(key)),
        ..Default::default()
    }
}

/// The processor's durable pull consumer on the ingest queue. Replicas of
/// the processor share it, so each message goes to one of them.
pub fn processor_consumer(names: &Names, q: &QueueConfig) -> pull::Config {
    pull::Config {
        durable_name: Some(names.processor()),
        description: Some("sluice processor".into()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: q.visibility_timeout,
        max_deliver: -1,
        max_ack_pending: q.max_ack_pending,
        filter_subject: names.subject(crate::subjects::INGEST_ALL),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_sqs() {
        let q = QueueConfig::from_env(&Env::default()).unwrap();
        assert_eq!(q.visibility_timeout, Duration::from_secs(30));
        assert_eq!(q.retention, Duration::from_secs(14 * 86_400));
        assert_eq!(q.max_receive, 5);
    }

    #[test]
    fn retry_delay_walks_the_schedule_and_repeats_the_last() {
        let env = Env::default().with("SLUICE_QUEUE_BACKOFF", "1s,5s");
        let q = QueueConfig::from_env(&env).unwrap();
        assert_eq!(q.retry_delay(1), Duration::from_secs(1));
        assert_eq!(q.retry_delay(2), Duration::from_secs(5));
        assert_eq!(q.retry_delay(9), Duration::from_secs(5));
        assert_eq!(q.retry_delay(0), Duration::from_secs(1));
    }

    #[test]
    fn the_ingest_queue_refuses_new_rather_than_dropping_accepted() {
        let q = QueueConfig::from_env(&Env::default()).unwrap();
        let s = ingest_stream(&Names::new(""), &q, 1);
        assert_eq!(s.discard, DiscardPolicy::New);
        assert_eq!(s.retention, RetentionPolicy::WorkQueue);
        assert_eq!(s.storage, StorageType::File);
    }

    #[test]
    fn deliveries_are_a_work_queue_that_refuses_rather_than_drops() {
        let q = QueueConfig::from_env(&Env::default()).unwrap();
        let s = deliveries_stream(&Names::new(""), &q, 3);
        assert!(s.discard_new_per_subject && s.max_messages_per_subject == 100_000);
        assert_eq!(s.retention, RetentionPolicy::WorkQueue);
        assert_eq!(s.discard, DiscardPolicy::New);
        assert_eq!(s.num_replicas, 3);
        let c = target_consumer(
            &Names::new("p"),
            "k1",
            Duration::from_secs(5),
            10,
            "d".into(),
        );
        assert_eq!(c.filter_subject, "p.deliver.k1");
        assert_eq!(c.max_deliver, -1);
    }

    #[test]
    fn prefixes_keep_streams_apart() {
        let n = Names::new("t1");
        assert_eq!(n.ingest(), "t1INGEST");
        assert_eq!(n.subject("ingest.>"), "t1.ingest.>");
        assert_eq!(Names::new("a.b*").ingest(), "a_b_INGEST");
    }

    #[test]
    fn bad_queue_settings_name_their_variable() {
        let env = Env::default().with("SLUICE_QUEUE_VISIBILITY_TIMEOUT", "0s");
        assert_eq!(
            QueueConfig::from_env(&env).unwrap_err().var,
            "SLUICE_QUEUE_VISIBILITY_TIMEOUT"
        );
        let env = Env::default().with("SLUICE_QUEUE_MAX_RECEIVE", "0");
        assert_eq!(
            QueueConfig::from_env(&env).unwrap_err().var,
            "SLUICE_QUEUE_MAX_RECEIVE"
        );
    }
}
