//! Orders: what a client sends, what the processor acts on, and its states.

use serde::{Deserialize, Serialize};

use crate::input::FieldError;
use crate::money;

/// Most lines in one order.
pub const MAX_ITEMS: usize = 100;
/// Largest quantity of one line.
pub const MAX_QUANTITY: u32 = 10_000;
/// Longest SKU.
pub const MAX_SKU_LEN: usize = 64;

/// The source and detail-type of the event that places an order.
pub const ORDER_SOURCE: &str = "sluice.orders";
/// Detail-type of the placing event.
pub const ORDER_PLACED: &str = "OrderPlaced";
/// Detail-type of the event a confirmed order emits.
pub const ORDER_CONFIRMED: &str = "OrderConfirmed";
/// Detail-type of the event a rejected order emits.
pub const ORDER_REJECTED: &str = "OrderRejected";

/// `POST /v1/orders` body.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    description = "An order. Line prices must have no more fraction digits than the currency (2 for EUR, 0 for JPY), SKUs must differ, and the total must stay under 10^15 minor units; otherwise 422."
)]
pub struct OrderInput {
    /// Who orders.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    pub customer_id: String,
    /// What, how many, at what price.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<OrderItemInput>,
    /// ISO 4217 code, e.g. `EUR`.
    #[schema(schema_with = crate::money::currency_schema)]
    pub currency: String,
}

/// One line as a client sends it; `unit_price` is a decimal number or string.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItemInput {
    /// Stock keeping unit.
    #[schema(pattern = "^[-_.A-Za-z0-9]{1,64}$")]
    pub sku: String,
    /// How many; a whole number from 1.
    #[serde(deserialize_with = "crate::input::int::required")]
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: u32,
    /// Price of one unit, e.g. `12.50` or `"12.50"`.
    #[schema(schema_with = crate::money::amount_schema)]
    pub unit_price: serde_json::Value,
}

/// One validated line; prices in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Stock keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Price of one unit in minor units of the order's currency.
    pub unit_price_minor: i64,
}

/// A validated order: the `detail` of an `OrderPlaced` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    /// The order's id.
    pub order_id: String,
    /// Who orders.
    pub customer_id: String,
    /// ISO 4217 code.
    pub currency: String,
    /// The lines.
    pub items: Vec<OrderItem>,
    /// Sum of quantity × unit price, in minor units.
    pub total_minor: i64,
}

impl OrderInput {
    /// Validates the input and turns it into a [`PlacedOrder`] with id `order_id`.
    pub fn validate(self, order_id: String) -> Result<PlacedOrder, FieldError> {
        let cid = self.customer_id.trim();
        let blank = self
            .customer_id
            .chars()
            .all(|c| c.is_whitespace() || c == '\u{feff}');
        if blank || self.customer_id.chars().count() > 128 || cid.chars().any(char::is_control) {
            return Err(FieldError::new(
                "/customer_id",
                "must be 1 to 128 characters",
            ));
        }
        let digits = money::minor_digits(&self.currency).ok_or_else(|| {
            FieldError::new(
                "/currency",
                format!(
                    "{:?} is not a supported ISO 4217 currency code",
                    self.currency
                ),
            )
        })?;
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(FieldError::new(
                "/items",
                format!("must have 1 to {MAX_ITEMS} items"),
            ));
        }
        let mut items = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.into_iter().enumerate() {
            let at = |field: &str| format!("/items/{i}/{field}");
            check_sku(&item.sku).map_err(|e| FieldError::new(at("sku"), e))?;
            if items.iter().any(|x: &OrderItem| x.sku == item.sku) {
                return Err(FieldError::new(
                    at("sku"),
                    "appears twice; put the total quantity on one line",
                ));
            }
            if item.quantity == 0 || item.quantity > MAX_QUANTITY {
                return Err(FieldError::new(
                    at("quantity"),
                    format!("must be 1 to {MAX_QUANTITY}"),
                ));
            }
            let text = match &item.unit_price {
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                _ => {
                    return Err(FieldError::new(
                        at("unit_price"),
                        "must be a decimal number or string",
                    ))
                }
            };
            let unit_price_minor = money::parse_amount(&text, digits)
                .map_err(|e| FieldError::new(at("unit_price"), e))?;
            items.push(OrderItem {
                sku: item.sku,
                quantity: item.quantity,
                unit_price_minor,
            });
        }
        let order = PlacedOrder {
            order_id,
            customer_id: cid.to_string(),
            currency: self.currency,
            total_minor: 0,
            items,
        };
        let total_minor = order
            .compute_total()
            .map_err(|e| FieldError::new("/items", e))?;
        Ok(PlacedOrder {
            total_minor,
            ..order
        })
    }
}

impl PlacedOrder {
    /// Re-checks an order read from the queue (it may come from another
    /// producer): amounts, currency, quantities and the total. A failure is a
    /// business rejection, not a retryable error.
    pub fn check(&self) -> Result<(), String> {
        money::minor_digits(&self.currency)
            .ok_or_else(|| format!("unsupported currency {:?}", self.currency))?;
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(format!("an order has 1 to {MAX_ITEMS} items"));
        }
        for item in &self.items {
            check_sku(&item.sku).map_err(|e| format!("sku {:?} {e}", item.sku))?;
            if item.quantity == 0 || item.quantity > MAX_QUANTITY {
                return Err(format!("quantity of {} out of range", item.sku));
            }
            if item.unit_price_minor <= 0 || item.unit_price_minor > money::MAX_MINOR {
                return Err(format!("unit price of {} out of range", item.sku));
            }
        }
        let total = self.compute_total()?;
        if total != self.total_minor {
            return Err(format!(
                "total {} does not match the items ({total})",
                self.total_minor
            ));
        }
        Ok(())
    }

    fn compute_total(&self) -> Result<i64, String> {
        self.items
            .iter()
            .try_fold(0i64, |acc, i| {
                i.unit_price_minor
                    .checked_mul(i64::from(i.quantity))
                    .and_then(|line| acc.checked_add(line))
            })
            .filter(|t| *t <= money::MAX_MINOR)
            .ok_or_else(|| "order total is too large".to_string())
    }

    /// The total as a decimal string.
    pub fn total_display(&self) -> String {
        money::format_amount(
            self.total_minor,
            money::minor_digits(&self.currency).unwrap_or(2),
        )
    }
}

impl PlacedOrder {
    /// The `OrderConfirmed` or `OrderRejected` event of this order, settled
    /// as `status` (with `reason`), derived from the `OrderPlaced` event
    /// `placed` (its id derived from that event's, so a repeat is
    /// de-duplicated; its account, region and version kept).
    pub fn settled_event(
        &self,
        placed: &crate::Envelope,
        status: OrderStatus,
        reason: Option<&str>,
    ) -> Option<crate::Envelope> {
        let detail_type = match status {
            OrderStatus::Confirmed => ORDER_CONFIRMED,
            OrderStatus::Rejected => ORDER_REJECTED,
            OrderStatus::Pending => return None,
        };
        Some(crate::Envelope {
            version: placed.version.clone(),
            id: crate::ids::derive_id(&placed.id, detail_type),
            detail_type: detail_type.to_string(),
            source: ORDER_SOURCE.to_string(),
            account: placed.account.clone(),
            time: time::OffsetDateTime::now_utc(),
            region: placed.region.clone(),
            resources: vec![format!("order/{}", self.order_id)],
            detail: serde_json::json!({
                "order_id": self.order_id,
                "customer_id": self.customer_id,
                "status": status,
                "reason": reason,
                "currency": self.currency,
                "total": self.total_display(),
            }),
        })
    }
}

fn check_sku(sku: &str) -> Result<(), String> {
    if sku.is_empty() || sku.len() > MAX_SKU_LEN {
        return Err(format!("must be 1 to {MAX_SKU_LEN} characters"));
    }
    if !sku
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may contain only letters, digits and - _ .".into());
    }
    Ok(())
}

/// Checks a SKU from a URL path.
pub fn check_sku_path(sku: &str) -> Result<(), FieldError> {
    check_sku(sku).map_err(|e| FieldError::new("/sku", e))
}

/// The states of an order. Transitions: PENDING → CONFIRMED | REJECTED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Accepted, stock not yet reserved.
    Pending,
    /// Stock reserved.
    Confirmed,
    /// Refused; the reason is recorded.
    Rejected,
}

impl OrderStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => Self::Pending,
            "CONFIRMED" => Self::Confirmed,
            "REJECTED" => Self::Rejected,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::parse_json;

    fn order(json: &str) -> Result<PlacedOrder, FieldError> {
        parse_json::<OrderInput>(json.as_bytes())
            .unwrap()
            .validate("o1".into())
    }

    #[test]
    fn a_valid_order_gets_its_total_in_minor_units() {
        let o = order(
            r#"{"customer_id":"c1","currency":"EUR","items":[
                {"sku":"A-1","quantity":2,"unit_price":12.5},
                {"sku":"B","quantity":1,"unit_price":"0.99"}]}"#,
        )
        .unwrap();
        assert_eq!(o.total_minor, 2599);
        assert_eq!(o.total_display(), "25.99");
        assert!(o.check().is_ok());
    }

    #[test]
    fn invalid_orders_name_the_field() {
        let cases = [
            (
                r#"{"customer_id":"","currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":1}]}"#,
                "/customer_id",
            ),
            (
                r#"{"customer_id":"c","currency":"EURO","items":[{"sku":"A","quantity":1,"unit_price":1}]}"#,
                "/currency",
            ),
            (
                r#"{"customer_id":"c","currency":"EUR","items":[]}"#,
                "/items",
            ),
            (
                r#"{"customer_id":"c","currency":"EUR","items":[{"sku":"A","quantity":0,"unit_price":1}]}"#,
                "/items/0/quantity",
            ),
            (
                r#"{"customer_id":"c","currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":-1}]}"#,
                "/items/0/unit_price",
            ),
            (
                r#"{"customer_id":"c","currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":1.001}]}"#,
                "/items/0/unit_price",
            ),
            (
                r#"{"customer_id":"c","currency":"JPY","items":[{"sku":"A","quantity":1,"unit_price":1.5}]}"#,
                "/items/0/unit_price",
            ),
            (
                r#"{"customer_id":"c","currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":true}]}"#,
                "/items/0/unit_price",
            ),
            (
                r#"{"customer_id":"c","currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":1},{"sku":"A","quantity":1,"unit_price":1}]}"#,
                "/items/1/sku",
            ),
            (
                r#"{"customer_id":"c","currency":"EUR","items":[{"sku":"a/b","quantity":1,"unit_price":1}]}"#,
                "/items/0/sku",
            ),
        ];
        for (json, pointer) in cases {
            assert_eq!(order(json).unwrap_err().pointer, pointer, "{json}");
        }
    }

    #[test]
    fn a_tampered_total_fails_the_processor_check() {
        let mut o = order(
            r#"{"customer_id":"c","currency":"EUR","items":[{"sku":"A","quantity":3,"unit_price":2}]}"#,
        )
        .unwrap();
        o.total_minor += 1;
        assert!(o.check().unwrap_err().contains("does not match"));
    }

    #[test]
    fn overflowing_totals_are_refused() {
        let r = order(
            r#"{"customer_id":"c","currency":"EUR","items":[
                {"sku":"A","quantity":10000,"unit_price":"9999999999999"}]}"#,
        );
        assert!(r.is_err());
    }
}
