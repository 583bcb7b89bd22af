//! The JSON body extractor: content type, size and syntax checked, with
//! problems reported as 415 / 413 / 400 / 422 and the raw bytes kept (for
//! idempotency hashing).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;

use crate::error::ApiError;
use crate::Shared;

/// A request body that is JSON.
#[derive(Debug)]
pub struct JsonBody {
    /// The raw bytes.
    pub bytes: Bytes,
    /// The parsed value.
    pub value: serde_json::Value,
}

impl JsonBody {
    /// Converts the value into `T`, naming the offending field on failure.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !self.value.is_object() {
            return Err(sluice_model::FieldError::new("", "the body must be a JSON object").into());
        }
        Ok(sluice_model::from_value(self.value.clone())?)
    }
}

impl FromRequest<Shared> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = state.config.body_limit;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::MalformedJson(format!("cannot read the body: {e}"))
            }
        })?;
        let value: serde_json::Value = sluice_model::parse_json(&bytes)?;
        Ok(Self { bytes, value })
    }
}
