//! `POST /v1/orders` and `GET /v1/orders/{id}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{json, Value};
use sluice_bus::subjects;
use sluice_model::envelope::VERSION;
use sluice_model::ids::{derive_id, new_id};
use sluice_model::order::{ORDER_PLACED, ORDER_SOURCE};
use sluice_model::{money, Envelope, OrderInput};

use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::idempotency::idempotent;
use crate::Shared;

/// Places an order; it is confirmed or rejected asynchronously.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = OrderInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe for 24 h",
        pattern = "^[\\x21-\\x7E]{1,255}$")),
    responses(
        (status = 202, description = "Accepted: {\"order_id\", \"status\": \"PENDING\"}", body = Object),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn post_order(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::ORDERS_WRITE)?;
    let input: OrderInput = body.parse()?;
    let (state2, principal2, headers2) = (state.clone(), principal.clone(), headers.clone());
    idempotent(&state, &principal.name, "orders", &headers, &body.bytes, |seed| async move {
        let order_id = seed.map(|s| derive_id(&s, "order")).unwrap_or_else(new_id);
        let order = input.validate(order_id.clone())?;
        let envelope = Envelope {
            version: VERSION.into(),
            id: order_id.clone(),
            detail_type: ORDER_PLACED.into(),
            source: ORDER_SOURCE.into(),
            account: state2.config.account.clone(),
            time: time::OffsetDateTime::now_utc(),
            region: state2.config.region.clone(),
            resources: vec![format!("order/{order_id}")],
            detail: serde_json::to_value(&order).map_err(|e| ApiError::Internal(e.to_string()))?,
        };
        let msg_headers = super::message_headers(&principal2, super::request_id(&headers2));
        state2
            .bus
            .publish(
                &subjects::ingest(subjects::KIND_ORDER, &order_id),
                &order_id,
                envelope.to_bytes().into(),
                msg_headers,
            )
            .await?;
        metrics::counter!("sluice.gateway.events.accepted", "kind" => "order", "duplicate" => "false")
            .increment(1);
        Ok((StatusCode::ACCEPTED, json!({ "order_id": order_id, "status": "PENDING" })))
    })
    .await
}

/// An order's status and history.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, body = Object), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get_order(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(scope::ORDERS_READ)?;
    let not_found = || ApiError::NotFound(format!("no order with id {id:?}"));
    if sluice_model::ids::check_client_id(&id).is_err() {
        return Err(not_found());
    }
    if let Some(o) = state.store.order(&id).await? {
        let digits = money::minor_digits(&o.currency).unwrap_or(2);
        let items: Vec<Value> = o
            .items
            .iter()
            .map(|i| {
                json!({"sku": i.sku, "quantity": i.quantity,
                "unit_price": money::format_amount(i.unit_price_minor, digits)})
            })
            .collect();
        return Ok(Json(json!({
            "order_id": o.order_id, "status": o.status, "reason": o.reason,
            "customer_id": o.customer_id, "currency": o.currency, "items": items,
            "total": money::format_amount(o.total_minor, digits),
            "history": o.history, "created_at": o.created_at, "updated_at": o.updated_at,
        })));
    }
    // Not created yet: is it still in the queue?
    match state.bus.queued_kind(&id).await? {
        Some(subjects::KIND_ORDER) => Ok(Json(json!({ "order_id": id, "status": "PENDING" }))),
        _ => Err(not_found()),
    }
}
