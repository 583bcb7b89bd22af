//! `inventory`: stock per SKU. A reservation is one conditional UpdateItem
//! that both decrements `available` and adds the order id to the item's
//! `reserved` set, on condition that there is enough stock and the order is
//! not in the set yet: it cannot apply twice for the same order, with no
//! transaction. Releasing is the mirror image; once an order is settled its
//! id is dropped from the set ([`Store::forget_reservation`]).

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use crate::{
    applied, classify, get_n, get_s, is_condition_failed, n, now_rfc3339, s, Store, StoreError,
};

/// Stock of one SKU.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stock {
    /// SKU.
    pub sku: String,
    /// Units available to reserve.
    pub available: i64,
    /// Orders holding a reservation not yet settled.
    pub pending_reservations: usize,
    /// Last change.
    pub updated_at: Option<String>,
}

/// The outcome of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved now.
    Reserved,
    /// This order had reserved it already (a redelivery).
    AlreadyReserved,
    /// Not enough stock; `available` units are left.
    Insufficient {
        /// Units left.
        available: i64,
    },
    /// No stock was ever set for the SKU.
    UnknownSku,
}

fn one(order_id: &str) -> AttributeValue {
    AttributeValue::Ss(vec![order_id.to_string()])
}

impl Store {
    /// Sets the units available for `sku` (keeping pending reservations).
    pub async fn set_stock(&self, sku: &str, available: i64) -> Result<Stock, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.inventory)
            .key("sku", s(sku))
            .update_expression("SET available = :a, updated_at = :now")
            .expression_attribute_values(":a", n(available))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(classify)?;
        let item = out.attributes.unwrap_or_default();
        Ok(stock_of(sku, &item))
    }

    /// Reads the stock of `sku` (consistent read).
    pub async fn stock(&self, sku: &str) -> Result<Option<Stock>, StoreError> {
        let item = self.get(&self.tables.inventory, "sku", sku).await?;
        Ok(item.map(|item| stock_of(sku, &item)))
    }

    /// Reserves `quantity` of `sku` for `order_id`, at most once per order.
    pub async fn reserve(
        &self,
        sku: &str,
        order_id: &str,
        quantity: u32,
    ) -> Result<Reservation, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.tables.inventory)
            .key("sku", s(sku))
            .update_expression("SET available = available - :q, updated_at = :now ADD reserved :o")
            .condition_expression(
                "attribute_exists(sku) AND available >= :q AND NOT contains(reserved, :oid)",
            )
            .expression_attribute_values(":q", n(quantity))
            .expression_attribute_values(":o", one(order_id))
            .expression_attribute_values(":oid", s(order_id))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Reservation::Reserved),
            Err(e) if is_condition_failed(&e) => {
                // Which condition failed? Look (consistently) at the item.
                let Some(item) = self.get(&self.tables.inventory, "sku", sku).await? else {
                    return Ok(Reservation::UnknownSku);
                };
                if reserved_by(&item).iter().any(|o| o == order_id) {
                    Ok(Reservation::AlreadyReserved)
                } else {
                    Ok(Reservation::Insufficient {
                        available: get_n(&item, "available").unwrap_or(0),
                    })
                }
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// Gives back what `order_id` reserved of `sku`. Returns `false` if it held nothing.
    pub async fn release(
        &self,
        sku: &str,
        order_id: &str,
        quantity: u32,
    ) -> Result<bool, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.tables.inventory)
            .key("sku", s(sku))
            .update_expression(
                "SET available = available + :q, updated_at = :now DELETE reserved :o",
            )
            .condition_expression("contains(reserved, :oid)")
            .expression_attribute_values(":q", n(quantity))
            .expression_attribute_values(":o", one(order_id))
            .expression_attribute_values(":oid", s(order_id))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .send()
            .await;
        applied(r)
    }

    /// Drops `order_id` from the reservation set once the order is settled
    /// (its status, not the set, then guards against repeating it).
    pub async fn forget_reservation(&self, sku: &str, order_id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.tables.inventory)
            .key("sku", s(sku))
            .update_expression("DELETE reserved :o")
            .condition_expression("attribute_exists(sku)")
            .expression_attribute_values(":o", one(order_id))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if is_condition_failed(&e) {
                    Ok(())
                } else {
                    Err(classify(e))
                }
            })
    }
}

fn reserved_by(item: &crate::Item) -> Vec<String> {
    item.get("reserved")
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default()
}

fn stock_of(sku: &str, item: &crate::Item) -> Stock {
    Stock {
        sku: sku.to_string(),
        available: get_n(item, "available").unwrap_or(0),
        pending_reservations: reserved_by(item).len(),
        updated_at: get_s(item, "updated_at"),
    }
}
