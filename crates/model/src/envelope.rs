//! The EventBridge event envelope every sluice message carries.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Envelope version, as EventBridge writes it.
pub const VERSION: &str = "0";

/// An event in EventBridge's shape. Field names and order follow EventBridge,
/// so rules and tools written for it read sluice events unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always `"0"`.
    pub version: String,
    /// Stable id: the de-duplication key end to end.
    pub id: String,
    /// What happened, e.g. `OrderPlaced`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// Who says so, e.g. `com.example.shop`.
    pub source: String,
    /// Account (tenant) the event belongs to.
    pub account: String,
    /// When it happened (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Region (deployment) that accepted it.
    pub region: String,
    /// Resources the event concerns.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The payload: a JSON object.
    pub detail: serde_json::Value,
}

impl Envelope {
    /// The envelope as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings and a Value cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads an envelope from JSON bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_eventbridge_field_names() {
        let e = Envelope {
            version: VERSION.into(),
            id: "1".into(),
            detail_type: "OrderPlaced".into(),
            source: "shop".into(),
            account: "000000000000".into(),
            time: time::macros::datetime!(2026-01-02 03:04:05 UTC),
            region: "local".into(),
            resources: vec![],
            detail: serde_json::json!({"a": 1}),
        };
        let v: serde_json::Value = serde_json::from_slice(&e.to_bytes()).unwrap();
        assert_eq!(v["detail-type"], "OrderPlaced");
        assert_eq!(v["time"], "2026-01-02T03:04:05Z");
        assert_eq!(v["version"], "0");
        let back = Envelope::from_bytes(&e.to_bytes()).unwrap();
        assert_eq!(back, e);
    }
}
