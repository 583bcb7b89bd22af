//! `events`: one record per accepted event, keyed by event id (`id`).
//!
//! The processor is its only writer. Every write is conditional on the
//! record not being `processed` yet, so a redelivered message can never
//! undo or repeat a completed one: the record is written exactly once as
//! processed, whatever the number of deliveries.

use serde::Serialize;
use sluice_model::EventStatus;

use crate::{applied, get_n, get_s, n, now_rfc3339, s, Store, StoreError};

/// What the store knows of an event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EventRecord {
    /// Event id.
    pub id: String,
    /// Where it is.
    pub status: EventStatus,
    /// Deliveries so far.
    pub attempts: u32,
    /// Queue it came through (`event`, `order`).
    pub kind: Option<String>,
    /// Envelope source.
    pub source: Option<String>,
    /// Envelope detail-type.
    #[serde(rename = "detail-type")]
    pub detail_type: Option<String>,
    /// When the queue accepted it.
    pub accepted_at: Option<String>,
    /// When it was processed.
    pub processed_at: Option<String>,
    /// The last error, while failing or dead-lettered.
    pub last_error: Option<String>,
    /// Last change.
    pub updated_at: Option<String>,
}

/// Facts about one delivery, written with every status change.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// Event id.
    pub id: &'a str,
    /// Queue kind.
    pub kind: &'a str,
    /// Envelope source (if the payload could be read).
    pub source: Option<&'a str>,
    /// Envelope detail-type.
    pub detail_type: Option<&'a str>,
    /// Delivery number (1-based).
    pub attempts: u32,
    /// When the queue accepted it (RFC 3339).
    pub accepted_at: &'a str,
}

impl Store {
    /// Reads an event record (consistent read).
    pub async fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        let Some(item) = self.get(&self.tables.events, "id", id).await? else {
            return Ok(None);
        };
        let status = get_s(&item, "status")
            .and_then(|st| EventStatus::parse(&st))
            .ok_or_else(|| StoreError::Corrupt {
                table: self.tables.events.clone(),
                reason: format!("event {id} has no valid status"),
            })?;
        Ok(Some(EventRecord {
            id: id.to_string(),
            status,
            attempts: get_n(&item, "attempts").unwrap_or(0),
            kind: get_s(&item, "kind"),
            source: get_s(&item, "source"),
            detail_type: get_s(&item, "detail_type"),
            accepted_at: get_s(&item, "accepted_at"),
            processed_at: get_s(&item, "processed_at"),
            last_error: get_s(&item, "last_error"),
            updated_at: get_s(&item, "updated_at"),
        }))
    }

    /// Records the event as processed. Returns `false` when it already was
    /// (a redelivery): nothing is written then.
    pub async fn mark_processed(&self, d: &Delivery<'_>) -> Result<bool, StoreError> {
        self.write_status(d, EventStatus::Processed, None).await
    }

    /// Records a failed attempt that will be retried. No-op once processed.
    pub async fn mark_failed(&self, d: &Delivery<'_>, error: &str) -> Result<bool, StoreError> {
        self.write_status(d, EventStatus::Failed, Some(error)).await
    }

    /// Records that the event went to the DLQ. No-op once processed.
    pub async fn mark_dead_lettered(
        &self,
        d: &Delivery<'_>,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.write_status(d, EventStatus::DeadLettered, Some(error))
            .await
    }

    async fn write_status(
        &self,
        d: &Delivery<'_>,
        status: EventStatus,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = now_rfc3339();
        let mut set = vec![
            "#st = :st",
            "attempts = :a",
            "kind = :k",
            "accepted_at = if_not_exists(accepted_at, :acc)",
            "updated_at = :now",
        ];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.events)
            .key("id", s(d.id))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(status.as_str()))
            .expression_attribute_values(":done", s(EventStatus::Processed.as_str()))
            .expression_attribute_values(":a", n(d.attempts))
            .expression_attribute_values(":k", s(d.kind))
            .expression_attribute_values(":acc", s(d.accepted_at))
            .expression_attribute_values(":now", s(now))
            .condition_expression("attribute_not_exists(id) OR #st <> :done");
        if let Some(src) = d.source {
            set.push("#src = :src");
            req = req
                .expression_attribute_names("#src", "source")
                .expression_attribute_values(":src", s(src));
        }
        if let Some(dt) = d.detail_type {
            set.push("detail_type = :dt");
            req = req.expression_attribute_values(":dt", s(dt));
        }
        let mut expr = String::from("SET ");
        if status == EventStatus::Processed {
            set.push("processed_at = :now");
        }
        if let Some(e) = error {
            set.push("last_error = :err");
            let e: String = e.chars().take(2000).collect();
            req = req.expression_attribute_values(":err", s(e));
        }
        expr.push_str(&set.join(", "));
        if error.is_none() {
            expr.push_str(" REMOVE last_error");
        }
        applied(req.update_expression(expr).send().await)
    }
}
