//! Every subject sluice publishes or consumes.
//!
//! `ingest.<kind>.<key>` work queues, `bus.<source>.<detail-type>` domain
//! events, `deliver.<target>` deliveries to one rule's target,
//! `queue.<name>` sluice queues, `notify.<topic>` topic messages (their
//! copies for https and email subscriptions wait on `deliver.<key>` too),
//! `dlq.<queue>` dead letters, and `control.<what>` notices between
//! replicas (core NATS, not stored). Tokens taken from user data are
//! sanitised so they can never add a level or a wildcard.
//!
//! Each queued message has a subject of its own, `ingest.<kind>.<key>` with
//! `key` derived from the event id: a pending event can then be found in the
//! work queue by id (a direct get of its subject), so "accepted" needs no
//! extra write. A work queue deletes what is acknowledged, so the subjects
//! held are bounded by the queue's lag.

/// Everything the ingest work queue holds.
pub const INGEST_ALL: &str = "ingest.>";
/// Queue kind of generic events posted to `POST /v1/events`.
pub const KIND_EVENT: &str = "event";
/// Queue kind of orders posted to `POST /v1/orders`.
pub const KIND_ORDER: &str = "order";
/// Every queue kind.
pub const KINDS: &[&str] = &[KIND_EVENT, KIND_ORDER];

/// The subject of the queued message of kind `kind` with event id `id`.
pub fn ingest(kind: &str, id: &str) -> String {
    format!(
        "ingest.{}.{}",
        token(kind),
        sluice_model::ids::derive_id(id, "subject")
    )
}

/// The queue kind of an ingest subject (`ingest.<kind>[.<key>]`).
pub fn ingest_kind(subject: &str) -> Option<&str> {
    subject.strip_prefix("ingest.")?.split('.').next()
}
/// Every object store notification (S3 event format).
pub const FILES_ALL: &str = "files.>";
/// The notifications of bucket `bucket` (`files.<bucket>`): where the
/// object store publishes them and file-ingest takes them.
pub fn files(bucket: &str) -> String {
    format!("files.{}", token(bucket))
}
/// The dead letters of the file pipeline of bucket `bucket`.
pub fn dlq_files(bucket: &str) -> String {
    format!("dlq.files.{}", token(bucket))
}
/// Everything on the bus.
pub const BUS_ALL: &str = "bus.>";
/// Everything dead-lettered.
pub const DLQ_ALL: &str = "dlq.>";
/// The dead-letter subject of queue `queue` (`dlq.<queue>`).
pub fn dlq(queue: &str) -> String {
    format!("dlq.{}", token(queue))
}

/// Every delivery waiting for its target.
pub const DELIVER_ALL: &str = "deliver.>";
/// The deliveries of one target (`key` from [`target_key`]).
pub fn deliver(key: &str) -> String {
    format!("deliver.{}", token(key))
}
/// Partitions of an ordered target's deliveries: a message group (an
/// ordering key's value) always maps to one of them.
pub const ORDER_PARTITIONS: u32 = 16;
/// The deliveries of partition `p` of an ordered target.
pub fn deliver_ordered(key: &str, p: u32) -> String {
    format!("deliver.{}.{p}", token(key))
}
/// Every delivery subject of a target, ordered or not.
pub fn deliver_any(key: &str) -> [String; 2] {
    [deliver(key), format!("deliver.{}.>", token(key))]
}
/// The dead letters of one target.
pub fn dlq_target(key: &str) -> String {
    format!("dlq.target.{}", token(key))
}
/// The stable key of target `id` of rule `rule` on bus `bus`: names its
/// delivery subject, its consumer and its dead letters. Bus, rule and
/// target names cannot contain `/`, so the joined name is unambiguous.
pub fn target_key(bus: &str, rule: &str, id: &str) -> String {
    sluice_model::ids::derive_id(&format!("{bus}/{rule}/{id}"), "target")
}
/// The stable key of subscription `id` of topic `topic`: names its
/// delivery subject (`deliver.<key>`, beside rule targets'), its consumer
/// and its dead letters. Topic names cannot contain `/`.
pub fn subscription_key(topic: &str, id: &str) -> String {
    sluice_model::ids::derive_id(&format!("{topic}/{id}"), "subscription")
}
/// The dead letters of one subscription.
pub fn dlq_subscription(key: &str) -> String {
    format!("dlq.subscription.{}", token(key))
}
/// Messages of the sluice queue `name` (queue names are subject-safe).
pub fn queue(name: &str) -> String {
    format!("queue.{}", token(name))
}
/// The dead letters of the sluice queue `name`.
pub fn dlq_queue(name: &str) -> String {
    format!("dlq.queue.{}", token(name))
}
/// Everything published to topics.
pub const NOTIFY_ALL: &str = "notify.>";
/// Messages published to topic `topic`. A FIFO topic's `.fifo` suffix
/// stays a token of its own, so `a.fifo` and `a_fifo` never share a subject.
pub fn notify(topic: &str) -> String {
    match topic.strip_suffix(sluice_model::names::FIFO_SUFFIX) {
        Some(base) => format!("notify.{}.fifo", token(base)),
        None => format!("notify.{}", token(topic)),
    }
}
/// The topic of a `notify.<topic>` subject.
pub fn notify_topic(subject: &str) -> Option<&str> {
    subject.strip_prefix("notify.")
}
/// Everything published to FIFO topics, in order.
pub const FIFO_ALL: &str = "fifo.>";
/// Partitions of FIFO topic messages: each is fanned out one message at a
/// time, in order; the message groups of all FIFO topics are spread over
/// them. Fixed: changing it would reorder messages already waiting.
pub const FIFO_PARTITIONS: u32 = 16;
/// The partition of message group `group` of FIFO topic `topic`.
pub fn fifo_partition(topic: &str, group: &str) -> u32 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(topic.as_bytes())
        .chain_update([0])
        .chain_update(group.as_bytes())
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % FIFO_PARTITIONS
}
/// The messages of partition `partition`, of every FIFO topic.
pub fn fifo_of_partition(partition: u32) -> String {
    format!("fifo.{partition}.>")
}
/// A message of FIFO topic `topic` in group `group`:
/// `fifo.<partition>.<topic>` (the topic's name is in a header too).
pub fn fifo(topic: &str, group: &str) -> String {
    format!("fifo.{}.{}", fifo_partition(topic, group), token(topic))
}
/// Notice that the rules of a bus changed (payload: the bus name).
pub const CONTROL_RULES: &str = "control.rules";
/// Notice that a subscription changed (payload: `<topic>/<id>`).
pub const CONTROL_SUBSCRIPTIONS: &str = "control.subscriptions";
/// Presence of transformer replicas (payload: the replica's id).
pub const CONTROL_PRESENCE: &str = "control.presence.transformer";

/// `bus.<source>.<detail-type>` with both parts made into safe tokens.
pub fn bus(source: &str, detail_type: &str) -> String {
    format!("bus.{}.{}", token(source), token(detail_type))
}

/// Makes `text` one safe subject token: `.`, `*`, `>` and white space become `_`.
pub fn token(text: &str) -> String {
    let t: String = text
        .chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_has_its_own_ingest_subject() {
        let s = ingest(KIND_EVENT, "a.b>c");
        assert!(s.starts_with("ingest.event."));
        assert_eq!(s.split('.').count(), 3, "{s}");
        assert_ne!(s, ingest(KIND_EVENT, "a.b>d"));
        assert_eq!(ingest_kind(&s), Some("event"));
        assert_eq!(ingest_kind("ingest.order"), Some("order"));
        assert_eq!(ingest_kind("bus.x.y"), None);
    }

    #[test]
    fn target_keys_are_stable_and_tell_targets_apart() {
        let k = target_key("default", "orders", "t1");
        assert_eq!(k, target_key("default", "orders", "t1"));
        assert_ne!(k, target_key("default", "orders", "t2"));
        assert_ne!(k, target_key("other", "orders", "t1"));
        assert_eq!(deliver(&k).split('.').count(), 2);
        assert_eq!(dlq_target(&k).split('.').count(), 3);
    }

    #[test]
    fn fifo_topics_keep_their_suffix_and_groups_their_partition() {
        assert_eq!(notify("a.fifo"), "notify.a.fifo");
        assert_eq!(notify("a_fifo"), "notify.a_fifo");
        assert_eq!(notify_topic("notify.a.fifo"), Some("a.fifo"));
        let p = fifo_partition("t.fifo", "g1");
        assert_eq!(p, fifo_partition("t.fifo", "g1"));
        assert!(p < FIFO_PARTITIONS);
        assert!(fifo("t.fifo", "g1").starts_with(&format!("fifo.{p}.")));
        let spread: std::collections::HashSet<u32> = (0..200)
            .map(|g| fifo_partition("t.fifo", &format!("g{g}")))
            .collect();
        assert_eq!(
            spread.len(),
            FIFO_PARTITIONS as usize,
            "groups use every partition"
        );
    }

    #[test]
    fn user_text_cannot_add_levels_or_wildcards() {
        assert_eq!(bus("com.shop", "Order Placed"), "bus.com_shop.Order_Placed");
        assert_eq!(bus("a.>", "*"), "bus.a__._");
        assert_eq!(token(""), "_");
    }
}
