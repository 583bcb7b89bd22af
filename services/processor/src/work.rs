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
use sluice_model::{Envelope, OrderStatus, PlacedOrder};
use sluice_store::events::Delivery;
use sluice_store::inventory::Reservation;

use crate::config::OrderFlow;
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
    if current.status == OrderStatus::Pending && state.config.order_flow == OrderFlow::Saga {
        start_saga(state, &order, envelope).await?;
        return Ok(OrderStatus::Pending);
    }
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
    let event = order
        .settled_event(envelope, settled.status, settled.reason.as_deref())
        .ok_or_else(|| ProcessError::Transient("order still pending".into()))?;
    publish_to_bus(state, &event, None, &event.id).await?;
    Ok(settled.status)
}

/// Hands the order to the orchestrator's saga (workflow id
/// `order-<order_id>`: a redelivered order starts it once).
async fn start_saga(
    state: &Shared,
    order: &PlacedOrder,
    envelope: &Envelope,
) -> Result<(), ProcessError> {
    let input = serde_json::json!({"order": order, "placed": envelope});
    let mut req = tonic::Request::new(sluice_proto::v1::StartWorkflowRequest {
        workflow_type: "order-saga".into(),
        workflow_id: format!("order-{}", order.order_id),
        input: input.to_string(),
        origin: "processor/orders".into(),
    });
    req.set_timeout(std::time::Duration::from_secs(10));
    sluice_telemetry::inject_current(|k, v| {
        if let (Ok(key), Ok(value)) = (
            k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            v.parse(),
        ) {
            req.metadata_mut().insert(key, value);
        }
    });
    match state.workflows.clone().start_workflow(req).await {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) if s.code() == tonic::Code::InvalidArgument => Err(ProcessError::Permanent(
            format!("the order saga refused the order: {}", s.message()),
        )),
        Err(s) => Err(ProcessError::Transient(format!(
            "the orchestrator answered {:?}: {}",
            s.code(),
            s.message()
        ))),
    }
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
