//! `orders`: one item per order (`order_id`), with its status, lines, total
//! and the history of its transitions. Transitions are conditional on the
//! expected current status, so each happens at most once.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use sluice_model::{OrderItem, OrderStatus, PlacedOrder};

use crate::{applied, get_n, get_s, n, now_rfc3339, s, Item, Store, StoreError};

/// One entry of an order's history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Status entered.
    pub status: OrderStatus,
    /// When (RFC 3339).
    pub at: String,
    /// Why, for rejections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An order as stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderRecord {
    /// Order id.
    pub order_id: String,
    /// Current status.
    pub status: OrderStatus,
    /// Who ordered.
    pub customer_id: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Lines.
    pub items: Vec<OrderItem>,
    /// Total in minor units.
    pub total_minor: i64,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Transitions, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

fn history_entry(status: OrderStatus, at: &str, reason: Option<&str>) -> AttributeValue {
    let mut m = Item::new();
    m.insert("status".into(), s(status.as_str()));
    m.insert("at".into(), s(at));
    if let Some(r) = reason {
        m.insert("reason".into(), s(r));
    }
    AttributeValue::M(m)
}

impl Store {
    /// Creates the order as PENDING unless it exists. Returns `true` if created.
    pub async fn create_order(&self, order: &PlacedOrder) -> Result<bool, StoreError> {
        let now = now_rfc3339();
        let items =
            serde_json::to_string(&order.items).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let r = self
            .client
            .put_item()
            .table_name(&self.tables.orders)
            .item("order_id", s(&order.order_id))
            .item("status", s(OrderStatus::Pending.as_str()))
            .item("customer_id", s(&order.customer_id))
            .item("currency", s(&order.currency))
            .item("items", s(items))
            .item("total_minor", n(order.total_minor))
            .item(
                "history",
                AttributeValue::L(vec![history_entry(OrderStatus::Pending, &now, None)]),
            )
            .item("created_at", s(&now))
            .item("updated_at", s(&now))
            .condition_expression("attribute_not_exists(order_id)")
            .send()
            .await;
        applied(r)
    }

    /// Moves the order from `from` to `to` (recording `reason`). Returns
    /// `false` if it was not in `from` (the transition already happened).
    pub async fn transition_order(
        &self,
        order_id: &str,
        from: OrderStatus,
        to: OrderStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = now_rfc3339();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.orders)
            .key("order_id", s(order_id))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", s(&now))
            .expression_attribute_values(
                ":h",
                AttributeValue::L(vec![history_entry(to, &now, reason)]),
            )
            .condition_expression("#st = :from");
        let mut expr =
            String::from("SET #st = :to, updated_at = :now, history = list_append(history, :h)");
        if let Some(r) = reason {
            expr.push_str(", reason = :r");
            req = req.expression_attribute_values(":r", s(r));
        }
        applied(req.update_expression(expr).send().await)
    }

    /// Reads an order (consistent read).
    pub async fn order(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let Some(item) = self.get(&self.tables.orders, "order_id", order_id).await? else {
            return Ok(None);
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            table: self.tables.orders.clone(),
            reason: format!("order {order_id}: {reason}"),
        };
        let status = get_s(&item, "status")
            .and_then(|v| OrderStatus::parse(&v))
            .ok_or_else(|| corrupt("bad status"))?;
        let items: Vec<OrderItem> = get_s(&item, "items")
            .and_then(|v| serde_json::from_str(&v).ok())
            .ok_or_else(|| corrupt("bad items"))?;
        let history = item
            .get("history")
            .and_then(|h| h.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|e| e.as_m().ok())
                    .filter_map(|m| {
                        Some(HistoryEntry {
                            status: OrderStatus::parse(&get_s(m, "status")?)?,
                            at: get_s(m, "at")?,
                            reason: get_s(m, "reason"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(OrderRecord {
            order_id: order_id.to_string(),
            status,
            customer_id: get_s(&item, "customer_id").unwrap_or_default(),
            currency: get_s(&item, "currency").unwrap_or_default(),
            items,
            total_minor: get_n(&item, "total_minor").unwrap_or(0),
            reason: get_s(&item, "reason"),
            history,
            created_at: get_s(&item, "created_at").unwrap_or_default(),
            updated_at: get_s(&item, "updated_at").unwrap_or_default(),
        }))
    }
}
