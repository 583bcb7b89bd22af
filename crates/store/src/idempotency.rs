//! `idempotency`: the API's `Idempotency-Key` records. A key (scoped to the
//! principal and route) maps to a hash of the request body and the response
//! that was given, for 24 hours.

use crate::{applied, epoch_secs, get_n, get_s, n, s, Store, StoreError};

/// A stored response for an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Scoped key: principal, route and client key.
    pub key: String,
    /// SHA-256 of the request body (hex).
    pub body_hash: String,
    /// HTTP status that was returned.
    pub status: u16,
    /// Response body that was returned.
    pub response: String,
    /// Unix time after which the record no longer counts.
    pub expires_at: i64,
}

impl Store {
    /// Reads a record; an expired one counts as absent.
    pub async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let Some(item) = self.get(&self.tables.idempotency, "key", key).await? else {
            return Ok(None);
        };
        let rec = IdempotencyRecord {
            key: key.to_string(),
            body_hash: get_s(&item, "body_hash").unwrap_or_default(),
            status: get_n(&item, "status").unwrap_or(0),
            response: get_s(&item, "response").unwrap_or_default(),
            expires_at: get_n(&item, "expires_at").unwrap_or(0),
        };
        Ok((rec.expires_at > epoch_secs()).then_some(rec))
    }

    /// Stores a record unless a live one exists. Returns `false` if one did.
    pub async fn put_idempotency(&self, rec: &IdempotencyRecord) -> Result<bool, StoreError> {
        let r = self
            .client
            .put_item()
            .table_name(&self.tables.idempotency)
            .item("key", s(&rec.key))
            .item("body_hash", s(&rec.body_hash))
            .item("status", n(rec.status))
            .item("response", s(&rec.response))
            .item("expires_at", n(rec.expires_at))
            .condition_expression("attribute_not_exists(#k) OR expires_at < :now")
            .expression_attribute_names("#k", "key")
            .expression_attribute_values(":now", n(epoch_secs()))
            .send()
            .await;
        applied(r)
    }
}
