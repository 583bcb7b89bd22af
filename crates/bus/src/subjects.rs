//! Every subject sluice publishes or consumes.
//!
//! `ingest.<kind>.<key>` work queues, `bus.<source>.<detail-type>` domain
//! events, `dlq.<queue>` dead letters. Tokens taken from user data are
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
/// Everything on the bus.
pub const BUS_ALL: &str = "bus.>";
/// Everything dead-lettered.
pub const DLQ_ALL: &str = "dlq.>";
/// The dead-letter subject of queue `queue` (`dlq.<queue>`).
pub fn dlq(queue: &str) -> String {
    format!("dlq.{}", token(queue))
}

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
    fn user_text_cannot_add_levels_or_wildcards() {
        assert_eq!(bus("com.shop", "Order Placed"), "bus.com_shop.Order_Placed");
        assert_eq!(bus("a.>", "*"), "bus.a__._");
        assert_eq!(token(""), "_");
    }
}
