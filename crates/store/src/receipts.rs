//! `receipts`: the gateway's note that an event was accepted (by event id),
//! so `GET /v1/events/{id}` can answer `accepted` before the processor has
//! seen it. Written in batches after the 202, off the hot path; best effort
//! (the event itself is safe in the queue either way). Expire after 14 days.

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use crate::{classify, epoch_secs, get_s, n, s, Store, StoreError};

/// Most items in one BatchWriteItem.
pub const MAX_BATCH: usize = 25;
/// How long a receipt is kept.
pub const TTL_SECS: i64 = 14 * 86_400;

/// One acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Event id.
    pub id: String,
    /// Queue kind.
    pub kind: String,
    /// When the queue acknowledged it (RFC 3339).
    pub accepted_at: String,
}

impl Store {
    /// Writes up to [`MAX_BATCH`] receipts in one request, retrying what the
    /// store leaves unprocessed a few times.
    pub async fn put_receipts(&self, receipts: &[Receipt]) -> Result<(), StoreError> {
        let expires = epoch_secs() + TTL_SECS;
        let mut writes: Vec<WriteRequest> = receipts
            .iter()
            .map(|r| {
                let put = PutRequest::builder()
                    .item("id", s(&r.id))
                    .item("kind", s(&r.kind))
                    .item("accepted_at", s(&r.accepted_at))
                    .item("expires_at", n(expires))
                    .build()
                    .map_err(|e| StoreError::Rejected(e.to_string()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, StoreError>>()?;
        for attempt in 0..5u32 {
            if writes.is_empty() {
                return Ok(());
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.tables.receipts, writes.clone())
                .send()
                .await
                .map_err(classify)?;
            writes = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.tables.receipts))
                .unwrap_or_default();
            if !writes.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
        }
        Err(StoreError::Unavailable(format!(
            "{} receipts left unprocessed",
            writes.len()
        )))
    }

    /// Reads a receipt.
    pub async fn receipt(&self, id: &str) -> Result<Option<Receipt>, StoreError> {
        let item = self.get(&self.tables.receipts, "id", id).await?;
        Ok(item.map(|item| Receipt {
            id: id.to_string(),
            kind: get_s(&item, "kind").unwrap_or_default(),
            accepted_at: get_s(&item, "accepted_at").unwrap_or_default(),
        }))
    }
}
