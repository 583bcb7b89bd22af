//! Every subject sluice publishes or consumes.
//!
//! `ingest.<kind>` work queues, `bus.<source>.<detail-type>` domain events,
//! `dlq.<queue>` dead letters. Tokens taken from user data are sanitised so
//! they can never add a level or a wildcard.

/// Everything the ingest work queue holds.
pub const INGEST_ALL: &str = "ingest.>";
/// Generic events posted to `POST /v1/events`.
pub const INGEST_EVENT: &str = "ingest.event";
/// Orders posted to `POST /v1/orders`.
pub const INGEST_ORDER: &str = "ingest.order";
/// Everything on the bus.
pub const BUS_ALL: &str = "bus.>";
/// Everything dead-lettered.
pub const DLQ_ALL: &str = "dlq.>";
/// Dead letters of the ingest queue.
pub const DLQ_INGEST: &str = "dlq.ingest";

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
    fn user_text_cannot_add_levels_or_wildcards() {
        assert_eq!(bus("com.shop", "Order Placed"), "bus.com_shop.Order_Placed");
        assert_eq!(bus("a.>", "*"), "bus.a__._");
        assert_eq!(token(""), "_");
    }
}
