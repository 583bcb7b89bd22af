//! What processing a message means, per kind. Every step is idempotent, so
//! a redelivery at any point repeats nothing that was already committed:
//!
//! - `event`: record the event as processed (conditional write keyed by its
//!   id), then publish it to `bus.<source>.<detail-type>` (on the bus the
//!   client named, carried in the `Sluice-Event-Bus` header).
//! - `order`: create the order PENDING (if absent), reserve each line's stock
//!   (one conditional update per SKU that cannot apply twice per order),
//!   then PENDING → CONFIRMED, or release and PENDING → REJECTED with the
//!   reason; publish `OrderConfirmed`/`OrderRejected`; record the event.
//!
//! Events derived from a message get ids derived from its id, so a repeated
//! publish is de-duplicated by JetStream and recognisable downstream.

use async_nats::HeaderMap;
use sluice_bus::subjects;
use sluice_model::ids::derive_id;
use sluice_model::order::{ORDER_CONFIRMED, ORDER_REJECTED, ORDER_SOURCE};
use sluice_model::{Envelope, OrderStatus, PlacedOrder};
use sluice_store::events::Delivery;
use sluice_store::inventory::Reservation;

use crate::error::ProcessError;
use crate::Shared;

/// Processes one decoded envelope of queue `kind`; `event_bus` is the bus
/// the client put it on (absent: the default bus).
pub async fn process(
    state: &Shared,
    kind: &str,
    envelope: &Envelope,
    event_bus: Option<&str>,
    delivery: &Delivery<'_>,
) -> Result<(), ProcessError> {
    match kind {
        "event" => {
            state.store.mark_processed(delivery).await?;
            publish_to_bus(state, envelope, event_bus, &format!("bus:{}", envelope.id)).await
        }
        "order" => {
            let outcome = order(state, envelope).await?;
            state.store.mark_processed(delivery).await?;
            metrics::counter!("sluice.processor.orders", "status" => outcome.as_str()).increment(1);
            Ok(())
        }
        other => Err(ProcessError::Permanent(format!(
            "no processor for queue kind {other:?}"
        ))),
    }
}

async fn publish_to_bus(
    state: &Shared,
    envelope: &Envelope,
    event_bus: Option<&str>,
    msg_id: &str,
) -> Result<(), ProcessError> {
    let subject = subjects::bus(&envelope.source, &envelope.detail_type);
    let mut headers = HeaderMap::new();
    if let Some(bus) = event_bus {
        headers.insert(sluice_bus::headers::EVENT_BUS, bus);
    }
    state
        .bus
        .publish(&subject, msg_id, envelope.to_bytes().into(), headers)
        .await?;
    Ok(())
}

async fn order(state: &Shared, envelope: &Envelope) -> Result<OrderStatus, ProcessError> {
    let order: PlacedOrder = serde_json::from_value(envelope.detail.clone())
        .map_err(|e| ProcessError::Permanent(format!("order detail is not an order: {e}")))?;
    let store = &state.store;
    store.create_order(&order).await?;

    let current = store
        .order(&order.order_id)
        .await?
        .ok_or_else(|| ProcessError::Transient("order not readable after create".into()))?;
    let status = if current.status == OrderStatus::Pending {
        settle(state, &order).await?
    } else {
        current.status
    };
    if status == OrderStatus::Confirmed {
        // The status now guards against repeats; the per-order markers can go.
        for item in &order.items {
            store.forget_reservation(&item.sku, &order.order_id).await?;
        }
    }
    let settled = store
        .order(&order.order_id)
        .await?
        .ok_or_else(|| ProcessError::Transient("order vanished".into()))?;
    let detail_type = match settled.status {
        OrderStatus::Confirmed => ORDER_CONFIRMED,
        OrderStatus::Rejected => ORDER_REJECTED,
        OrderStatus::Pending => return Err(ProcessError::Transient("order still pending".into())),
    };
    let event = Envelope {
        version: envelope.version.clone(),
        id: derive_id(&envelope.id, detail_type),
        detail_type: detail_type.to_string(),
        source: ORDER_SOURCE.to_string(),
        account: envelope.account.clone(),
        time: time::OffsetDateTime::now_utc(),
        region: envelope.region.clone(),
        resources: vec![format!("order/{}", order.order_id)],
        detail: serde_json::json!({
            "order_id": order.order_id,
            "customer_id": order.customer_id,
            "status": settled.status,
            "reason": settled.reason,
            "currency": order.currency,
            "total": order.total_display(),
        }),
    };
    publish_to_bus(state, &event, None, &event.id).await?;
    Ok(settled.status)
}

/// Reserves every line, then confirms; or releases and rejects. Returns the
/// status the order ended in (which another attempt may have set).
async fn settle(state: &Shared, order: &PlacedOrder) -> Result<OrderStatus, ProcessError> {
    let store = &state.store;
    if let Err(reason) = order.check() {
        return reject(state, order, &reason).await;
    }
    let mut newly_reserved = Vec::new();
    for item in &order.items {
        // On error, what this attempt reserved stays marked with the order id,
        // so the retry sees AlreadyReserved and does not take it twice.
        let outcome = store
            .reserve(&item.sku, &order.order_id, item.quantity)
            .await?;
        let reason = match outcome {
            Reservation::Reserved => {
                newly_reserved.push(item);
                continue;
            }
            Reservation::AlreadyReserved => continue,
            Reservation::Insufficient { available } => format!(
                "insufficient stock for {}: {} requested, {} available",
                item.sku, item.quantity, available
            ),
            Reservation::UnknownSku => format!("unknown sku {}", item.sku),
        };
        return reject(state, order, &reason).await;
    }
    if store
        .transition_order(
            &order.order_id,
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            None,
        )
        .await?
    {
        return Ok(OrderStatus::Confirmed);
    }
    // Another attempt settled the order meanwhile; what this attempt took is extra.
    for item in newly_reserved {
        store
            .release(&item.sku, &order.order_id, item.quantity)
            .await?;
    }
    current_status(state, order).await
}

async fn reject(
    state: &Shared,
    order: &PlacedOrder,
    reason: &str,
) -> Result<OrderStatus, ProcessError> {
    for item in &order.items {
        state
            .store
            .release(&item.sku, &order.order_id, item.quantity)
            .await?;
    }
    if state
        .store
        .transition_order(
            &order.order_id,
            OrderStatus::Pending,
            OrderStatus::Rejected,
            Some(reason),
        )
        .await?
    {
        return Ok(OrderStatus::Rejected);
    }
    current_status(state, order).await
}

async fn current_status(state: &Shared, order: &PlacedOrder) -> Result<OrderStatus, ProcessError> {
    Ok(state
        .store
        .order(&order.order_id)
        .await?
        .map(|o| o.status)
        .unwrap_or(OrderStatus::Pending))
}
