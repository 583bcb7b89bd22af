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
    let Some(key) = key_of(headers)? else {
        let (status, body) = f(None).await?;
        return Ok((status, axum::Json(body)).into_response());
    };
    let scoped = scoped_key(principal, route, key);
    let body_hash = hex::encode(Sha256::digest(body));
    match decide(state.store.idempotency(&scoped).await?.as_ref(), &body_hash) {
        Decision::Replay(rec) => return Ok(replay(rec)),
        Decision::Conflict => {
            return Err(ApiError::Conflict(
                "this Idempotency-Key was used with a different request body".into(),
            ))
        }
        Decision::Proceed => {}
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

/// The key as stored: the client's key can only collide with its own, on one route.
fn scoped_key(principal: &str, route: &str, key: &str) -> String {
    hex::encode(Sha256::digest(format!("{principal}\0{route}\0{key}")))
}

/// What to do with a request, given the record its key has (if any).
#[derive(Debug, PartialEq, Eq)]
enum Decision<'a> {
    /// First use: run the request.
    Proceed,
    /// Same key, same body: give the stored response.
    Replay(&'a IdempotencyRecord),
    /// Same key, different body.
    Conflict,
}

fn decide<'a>(existing: Option<&'a IdempotencyRecord>, body_hash: &str) -> Decision<'a> {
    match existing {
        None => Decision::Proceed,
        Some(rec) if rec.body_hash == body_hash => Decision::Replay(rec),
        Some(_) => Decision::Conflict,
    }
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

/// The request's `Idempotency-Key`, checked: 1 to 255 visible ASCII
/// characters. `None` when there is none.
pub fn key_of(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(key) = headers.get(HEADER) else {
        return Ok(None);
    };
    key.to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
        })
        .map(Some)
        .ok_or_else(|| {
            ApiError::Invalid(sluice_model::FieldError::new(
                "",
                "Idempotency-Key must be 1 to 255 visible ASCII characters, no spaces",
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str) -> IdempotencyRecord {
        IdempotencyRecord {
            key: "k".into(),
            body_hash: hash.into(),
            status: 202,
            response: r#"{"id":"e1"}"#.into(),
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn first_use_proceeds_same_body_replays_other_body_conflicts() {
        let rec = record("aa");
        assert_eq!(decide(None, "aa"), Decision::Proceed);
        assert_eq!(decide(Some(&rec), "aa"), Decision::Replay(&rec));
        assert_eq!(decide(Some(&rec), "bb"), Decision::Conflict);
    }

    #[test]
    fn keys_are_scoped_to_principal_and_route() {
        let k = scoped_key("alice", "events", "retry-1");
        assert_eq!(k, scoped_key("alice", "events", "retry-1"));
        assert_ne!(k, scoped_key("bob", "events", "retry-1"));
        assert_ne!(k, scoped_key("alice", "orders", "retry-1"));
        // The separator keeps ("a","b\0c") from colliding with ("a\0b","c").
        assert_ne!(scoped_key("a", "b", "c"), scoped_key("a", "", "b\0c"));
    }

    #[test]
    fn a_replay_carries_the_stored_status_and_body() {
        let res = replay(&record("aa"));
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(res.headers()["idempotent-replayed"], "true");
        assert_eq!(res.headers()["content-type"], "application/json");
    }
}
