//! `queues`: the sluice queues that exist, keyed by `name`, with their
//! settings as an opaque blob (the transformer's protobuf encoding). The
//! messages themselves live in JetStream.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::{applied, get_s, now_rfc3339, s, Item, Store, StoreError};

/// A stored queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    /// Its name.
    pub name: String,
    /// Its settings' encoding.
    pub spec: Vec<u8>,
    /// RFC 3339.
    pub created_at: String,
}

fn record(item: &Item) -> Option<QueueRecord> {
    Some(QueueRecord {
        name: get_s(item, "name")?,
        spec: item.get("spec")?.as_b().ok()?.as_ref().to_vec(),
        created_at: get_s(item, "created_at").unwrap_or_default(),
    })
}

impl Store {
    /// Reads a queue.
    pub async fn queue(&self, name: &str) -> Result<Option<QueueRecord>, StoreError> {
        match self.get(&self.tables.queues, "name", name).await? {
            None => Ok(None),
            Some(item) => record(&item).map(Some).ok_or_else(|| StoreError::Corrupt {
                table: self.tables.queues.clone(),
                reason: format!("queue {name} lacks its spec"),
            }),
        }
    }

    /// Creates or replaces a queue (keeping its creation time). Returns the
    /// record and whether it was created.
    pub async fn put_queue(
        &self,
        name: &str,
        spec: Vec<u8>,
    ) -> Result<(QueueRecord, bool), StoreError> {
        let existing = self.queue(name).await?;
        let created_at = existing
            .as_ref()
            .map(|q| q.created_at.clone())
            .unwrap_or_else(now_rfc3339);
        self.client
            .put_item()
            .table_name(&self.tables.queues)
            .item("name", s(name))
            .item("spec", AttributeValue::B(Blob::new(spec.clone())))
            .item("created_at", s(&created_at))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok((
            QueueRecord {
                name: name.to_string(),
                spec,
                created_at,
            },
            existing.is_none(),
        ))
    }

    /// Every queue, by name.
    pub async fn queues(&self) -> Result<Vec<QueueRecord>, StoreError> {
        let mut out: Vec<QueueRecord> = self
            .scan_all(&self.tables.queues)
            .await?
            .iter()
            .filter_map(record)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes a queue's record. Returns `false` when there was none.
    pub async fn delete_queue(&self, name: &str) -> Result<bool, StoreError> {
        applied(
            self.client
                .delete_item()
                .table_name(&self.tables.queues)
                .key("name", s(name))
                .condition_expression("attribute_exists(#n)")
                .expression_attribute_names("#n", "name")
                .send()
                .await,
        )
    }
}
