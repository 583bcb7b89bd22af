//! Events as clients send them (`POST /v1/events`) and the status of one.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::{Envelope, VERSION};
use crate::ids;
use crate::input::FieldError;

/// Longest `source` / `detail-type`, as on EventBridge.
pub const MAX_NAME_LEN: usize = 256;
/// Most resources on one event.
pub const MAX_RESOURCES: usize = 20;
/// Longest resource string.
pub const MAX_RESOURCE_LEN: usize = 2048;
/// Largest envelope, serialised (EventBridge's entry limit).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Most entries in one batch (`{"entries": [...]}`).
pub const MAX_BATCH: usize = 100;

/// A resource an event concerns (the OpenAPI schema of one).
#[derive(utoipa::ToSchema)]
#[schema(min_length = 1, max_length = 2048)]
#[allow(dead_code)]
pub struct Resource(String);

/// One event as a client sends it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// Who says so (1 to 256 characters).
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    pub source: String,
    /// What happened (1 to 256 characters).
    #[serde(rename = "detail-type")]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    pub detail_type: String,
    /// The payload: a JSON object.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// Resources the event concerns (at most 20).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Resource>>, max_items = 20)]
    pub resources: Option<Vec<String>>,
    /// When it happened; the time of acceptance if absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub time: Option<OffsetDateTime>,
    /// The client's id for the event; makes retries idempotent. Generated if absent.
    #[serde(default)]
    #[schema(pattern = "^[-_.:A-Za-z0-9]{1,128}$")]
    pub id: Option<String>,
    /// The bus the event is put on (EventBridge's `EventBusName`); `default`
    /// when absent. An unknown bus is a 404.
    #[serde(default, rename = "event-bus-name")]
    #[schema(pattern = "^[.\\-_A-Za-z0-9]{1,256}$")]
    pub event_bus_name: Option<String>,
}

impl EventInput {
    /// Checks every field; the first problem is returned with its pointer.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_name("/source", &self.source)?;
        check_name("/detail-type", &self.detail_type)?;
        if !self.detail.is_object() {
            return Err(FieldError::new("/detail", "must be a JSON object"));
        }
        if let Some(resources) = &self.resources {
            if resources.len() > MAX_RESOURCES {
                return Err(FieldError::new(
                    "/resources",
                    format!("at most {MAX_RESOURCES} resources"),
                ));
            }
            for (i, r) in resources.iter().enumerate() {
                if r.is_empty() || r.chars().count() > MAX_RESOURCE_LEN {
                    return Err(FieldError::new(
                        format!("/resources/{i}"),
                        format!("must be 1 to {MAX_RESOURCE_LEN} characters"),
                    ));
                }
            }
        }
        if let Some(id) = &self.id {
            ids::check_client_id(id).map_err(|e| FieldError::new("/id", e))?;
        }
        if let Some(bus) = &self.event_bus_name {
            crate::names::check_bus(bus).map_err(|e| FieldError::new("/event-bus-name", e))?;
        }
        Ok(())
    }

    /// The envelope for this (validated) input; `id` is the id to use when the
    /// client gave none, `now` the time of acceptance.
    pub fn into_envelope(
        self,
        id: String,
        account: &str,
        region: &str,
        now: OffsetDateTime,
    ) -> Envelope {
        Envelope {
            version: VERSION.to_string(),
            id: self.id.unwrap_or(id),
            detail_type: self.detail_type,
            source: self.source,
            account: account.to_string(),
            time: self.time.unwrap_or(now),
            region: region.to_string(),
            resources: self.resources.unwrap_or_default(),
            detail: self.detail,
        }
    }
}

/// Checks the serialised size of an envelope.
pub fn check_size(bytes: &[u8]) -> Result<(), FieldError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(FieldError::new(
            "",
            format!(
                "event is {} bytes; at most {MAX_EVENT_BYTES} are allowed",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

fn check_name(pointer: &str, value: &str) -> Result<(), FieldError> {
    // White space as JSON Schema's `\s` knows it (which includes U+FEFF).
    if value.chars().all(|c| c.is_whitespace() || c == '\u{feff}') {
        return Err(FieldError::new(pointer, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(FieldError::new(
            pointer,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            pointer,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Where an accepted event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Acknowledged by the queue, not yet processed.
    Accepted,
    /// Processed; its effects are committed.
    Processed,
    /// The last attempt failed; it will be retried.
    Failed,
    /// Gave up: it is in the dead-letter queue.
    DeadLettered,
}

impl EventStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Processed => "processed",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" => Self::Accepted,
            "processed" => Self::Processed,
            "failed" => Self::Failed,
            "dead_lettered" => Self::DeadLettered,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{parse_json, InputError};

    fn input(json: &str) -> EventInput {
        parse_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn a_minimal_event_is_valid() {
        let e = input(r#"{"source":"shop","detail-type":"Ping","detail":{}}"#);
        assert!(e.validate().is_ok());
    }

    #[test]
    fn detail_must_be_an_object() {
        let e = input(r#"{"source":"shop","detail-type":"Ping","detail":[1]}"#);
        assert_eq!(e.validate().unwrap_err().pointer, "/detail");
    }

    #[test]
    fn empty_and_long_names_are_refused() {
        let e = input(r#"{"source":" ","detail-type":"Ping","detail":{}}"#);
        assert_eq!(e.validate().unwrap_err().pointer, "/source");
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let e = input(&format!(
            r#"{{"source":"s","detail-type":"{long}","detail":{{}}}}"#
        ));
        assert_eq!(e.validate().unwrap_err().pointer, "/detail-type");
    }

    #[test]
    fn a_bad_bus_name_is_refused() {
        let e = input(r#"{"source":"s","detail-type":"t","detail":{},"event-bus-name":"a/b"}"#);
        assert_eq!(e.validate().unwrap_err().pointer, "/event-bus-name");
        let e = input(r#"{"source":"s","detail-type":"t","detail":{},"event-bus-name":"orders"}"#);
        assert!(e.validate().is_ok());
    }

    #[test]
    fn a_bad_client_id_is_refused() {
        let e = input(r#"{"source":"s","detail-type":"t","detail":{},"id":"a b"}"#);
        assert_eq!(e.validate().unwrap_err().pointer, "/id");
    }

    #[test]
    fn unknown_fields_and_bad_times_are_schema_errors() {
        let r = parse_json::<EventInput>(br#"{"source":"s","detail-type":"t","detail":{},"x":1}"#);
        assert!(matches!(r, Err(InputError::Invalid(_))));
        let r = parse_json::<EventInput>(
            br#"{"source":"s","detail-type":"t","detail":{},"time":"yesterday"}"#,
        );
        assert!(matches!(r, Err(InputError::Invalid(ref f)) if f.pointer == "/time"));
    }

    #[test]
    fn the_client_id_wins_over_the_generated_one() {
        let e = input(r#"{"source":"s","detail-type":"t","detail":{},"id":"mine"}"#);
        let env = e.into_envelope("gen".into(), "0", "local", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(env.id, "mine");
        assert_eq!(env.time, OffsetDateTime::UNIX_EPOCH);
    }

    #[test]
    fn status_spellings_round_trip() {
        for s in [
            EventStatus::Accepted,
            EventStatus::Processed,
            EventStatus::Failed,
            EventStatus::DeadLettered,
        ] {
            assert_eq!(EventStatus::parse(s.as_str()), Some(s));
        }
    }
}
