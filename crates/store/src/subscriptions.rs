//! `subscriptions`: a topic's subscriptions, keyed by `topic` and `id`,
//! each an opaque blob (the notifier's protobuf encoding). A topic's
//! subscriptions are read with one query; only the notifier's list of
//! subscriptions it delivers to (read at start and when one changes) scans.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::{applied, classify, get_s, s, Item, Store, StoreError};

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Its topic.
    pub topic: String,
    /// Its id.
    pub id: String,
    /// Its definition's encoding.
    pub spec: Vec<u8>,
}

fn record(item: &Item) -> Option<SubscriptionRecord> {
    Some(SubscriptionRecord {
        topic: get_s(item, "topic")?,
        id: get_s(item, "id")?,
        spec: item.get("spec")?.as_b().ok()?.as_ref().to_vec(),
    })
}

impl Store {
    /// Creates a subscription. `false` when one with its id exists (a
    /// concurrent subscribe of the same endpoint won).
    pub async fn put_subscription(
        &self,
        topic: &str,
        id: &str,
        spec: Vec<u8>,
    ) -> Result<bool, StoreError> {
        applied(
            self.client
                .put_item()
                .table_name(&self.tables.subscriptions)
                .item("topic", s(topic))
                .item("id", s(id))
                .item("spec", AttributeValue::B(Blob::new(spec)))
                .condition_expression("attribute_not_exists(id)")
                .send()
                .await,
        )
    }

    /// A topic's subscriptions, by id.
    pub async fn subscriptions_of(
        &self,
        topic: &str,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.subscriptions)
                .key_condition_expression("topic = :t")
                .expression_attribute_values(":t", s(topic))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            for item in page.items() {
                out.push(record(item).ok_or_else(|| StoreError::Corrupt {
                    table: self.tables.subscriptions.clone(),
                    reason: format!("a subscription of {topic} lacks its spec"),
                })?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Replaces a subscription still stored as `old` with `new`. Returns
    /// `false` when it was removed or changed meanwhile (nothing written).
    pub async fn replace_subscription(
        &self,
        topic: &str,
        id: &str,
        old: Vec<u8>,
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        applied(
            self.client
                .put_item()
                .table_name(&self.tables.subscriptions)
                .item("topic", s(topic))
                .item("id", s(id))
                .item("spec", AttributeValue::B(Blob::new(new)))
                .condition_expression("spec = :old")
                .expression_attribute_values(":old", AttributeValue::B(Blob::new(old)))
                .send()
                .await,
        )
    }

    /// One subscription.
    pub async fn get_subscription(
        &self,
        topic: &str,
        id: &str,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.subscriptions)
            .key("topic", s(topic))
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item().and_then(record))
    }

    /// Every subscription of every topic (a paged scan).
    pub async fn all_subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let items = self.scan_all(&self.tables.subscriptions).await?;
        Ok(items.iter().filter_map(record).collect())
    }

    /// Deletes a subscription. Returns `false` when there was none.
    pub async fn delete_subscription(&self, topic: &str, id: &str) -> Result<bool, StoreError> {
        applied(
            self.client
                .delete_item()
                .table_name(&self.tables.subscriptions)
                .key("topic", s(topic))
                .key("id", s(id))
                .condition_expression("attribute_exists(id)")
                .send()
                .await,
        )
    }
}
