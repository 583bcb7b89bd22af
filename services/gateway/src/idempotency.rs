//! `Idempotency-Key`: the same key with the same body within the TTL gets
//! the original response; with a different body, 409. The key (scoped to
//! principal and route) also seeds the ids of what the request creates, so
//! two concurrent first attempts publish the same ids and JetStream keeps one.

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sluice_store::idempotency::IdempotencyRecord;

use crate::error::ApiError;
use crate::Shared;

/// Header name.
pub const HEADER: &str = "idempotency-key";

/// Runs `f` once per (principal, route, key). `f` gets the id seed: the
/// scoped key when the client sent one.
pub async fn idempotent<F, Fut>(
    state: &Shared,
    principal: &str,
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
    f: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<String>) -> Fut,
    Fut: Future<Output = Result<(StatusCode, serde_json::Value), ApiError>>,
{
    let Some(key) = headers.get(HEADER) else {
        let (status, body) = f(None).await?;
        return Ok((status, axum::Json(body)).into_response());
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::Invalid(sluice_model::FieldError::new(
                "",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ))
        })?;
    let scoped = hex::encode(Sha256::digest(format!("{principal}\0{route}\0{key}")));
    let body_hash = hex::encode(Sha256::digest(body));
    if let Some(rec) = state.store.idempotency(&scoped).await? {
        if rec.body_hash != body_hash {
            return Err(ApiError::Conflict(
                "this Idempotency-Key was used with a different request body".into(),
            ));
        }
        return Ok(replay(&rec));
    }
    let (status, value) = f(Some(scoped.clone())).await?;
    let response = serde_json::to_string(&value).unwrap_or_default();
    let rec = IdempotencyRecord {
        key: scoped,
        body_hash,
        status: status.as_u16(),
        response,
        expires_at: time::OffsetDateTime::now_utc().unix_timestamp()
            + i64::try_from(state.config.idempotency_ttl.as_secs()).unwrap_or(86_400),
    };
    // If this fails the ids derived from the key still make a retry safe.
    if let Err(e) = state.store.put_idempotency(&rec).await {
        tracing::warn!(error = %e, "cannot record idempotency key");
    }
    Ok((status, axum::Json(value)).into_response())
}

fn replay(rec: &IdempotencyRecord) -> Response {
    let status = StatusCode::from_u16(rec.status).unwrap_or(StatusCode::OK);
    let mut res = (status, rec.response.clone()).into_response();
    let h = res.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}
