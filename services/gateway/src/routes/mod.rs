//! The API's handlers, one module per resource.

pub mod dlq;
pub mod events;
pub mod files;
pub mod health;
pub mod inventory;
pub mod orders;
pub mod queues;
pub mod rules;
pub mod tasks;
pub mod topics;
pub mod workflows;

use async_nats::HeaderMap;

use crate::auth::Principal;

/// NATS headers every published message carries.
pub(crate) fn message_headers(principal: &Principal, request_id: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(sluice_bus::headers::PRINCIPAL, principal.name.as_str());
    if let Some(id) = request_id {
        h.insert(sluice_bus::headers::REQUEST_ID, id);
    }
    h
}

/// The request id the request-id layer set.
pub(crate) fn request_id(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok())
}
