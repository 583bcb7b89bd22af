//! The JSON of buses, rules and targets, and its conversion to and from the
//! transformer's gRPC messages. Field names are the API's (`event_pattern`,
//! `retry_policy.maximum_retry_attempts`); a target is flat, its `type`
//! saying which fields apply. The schemas state every constraint JSON
//! Schema can; what it cannot (the pattern language, the address policy,
//! one input form at most) the transformer checks and answers 400 with a
//! pointer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_model::FieldError;
use sluice_proto::v1;
use utoipa::ToSchema;

use crate::error::ApiError;

/// The schema of a map of strings with at most `MAX` entries.
fn string_map<const MAX: usize>() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(
            utoipa::openapi::RefOr::T(ObjectBuilder::new().schema_type(Type::String).into()),
        )))
        .max_properties(Some(MAX))
        .build()
}

/// A bus.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bus {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// When it was created (RFC 3339; empty for `default`).
    pub created_at: String,
}

impl From<v1::Bus> for Bus {
    fn from(b: v1::Bus) -> Self {
        Self {
            name: b.name,
            description: b.description,
            created_at: b.created_at,
        }
    }
}

/// `PUT /v1/buses/{bus}` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusInput {
    /// What the bus is for (at most 512 characters).
    #[serde(default)]
    #[schema(max_length = 512, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    pub description: Option<String>,
}

/// Whether a rule matches events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuleState {
    /// It matches.
    Enabled,
    /// It matches nothing; its targets keep delivering what they hold.
    Disabled,
}

/// A target's retry policy (EventBridge's).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt, 0 to 185. Default 185.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sluice_model::input::int::optional"
    )]
    #[schema(minimum = 0, maximum = 185)]
    pub maximum_retry_attempts: Option<u32>,
    /// A delivery older than this (seconds) is dead-lettered instead of
    /// retried, 60 to 86400. Default 86400.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sluice_model::input::int::optional"
    )]
    #[schema(minimum = 60, maximum = 86400)]
    pub maximum_event_age_seconds: Option<u32>,
}

/// EventBridge's InputTransformer (its `InputPathsMap`/`InputTemplate`
/// spellings are accepted too).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputTransformer {
    /// Variable name → JSON path into the event (at most 100).
    #[serde(default, alias = "InputPathsMap")]
    #[schema(schema_with = string_map::<100>)]
    pub input_paths_map: BTreeMap<String, String>,
    /// The template, with `<name>` placeholders (at most 8192 characters).
    #[serde(alias = "InputTemplate")]
    #[schema(max_length = 8192)]
    pub input_template: String,
}

/// Credentials an HTTP target sends. Secrets read back as `********`;
/// writing `********` keeps the stored secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// A header carrying an API key.
    ApiKey {
        /// The header's name.
        #[schema(
            min_length = 1,
            max_length = 256,
            pattern = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
        )]
        header: String,
        /// The key.
        #[schema(min_length = 1, max_length = 4096)]
        value: String,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name (no `:`).
        #[schema(min_length = 1, max_length = 512, pattern = "^[^:\\x00-\\x1F\\x7F]+$")]
        username: String,
        /// Password.
        #[schema(max_length = 512)]
        password: String,
    },
    /// OAuth 2.0 client credentials: a token is fetched and cached.
    OauthClientCredentials {
        /// The token endpoint (http or https).
        #[schema(max_length = 2048, pattern = "^https?://")]
        token_url: String,
        /// Client id.
        #[schema(min_length = 1, max_length = 512)]
        client_id: String,
        /// Client secret.
        #[schema(min_length = 1, max_length = 4096)]
        client_secret: String,
        /// Requested scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 1024)]
        scope: Option<String>,
    },
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET (no body).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// HEAD (no body).
    Head,
    /// OPTIONS.
    Options,
}

/// Fields every target kind has, borrowed.
struct Common<'a> {
    id: &'a str,
    input: &'a Option<Value>,
    input_path: &'a Option<String>,
    input_transformer: &'a Option<InputTransformer>,
    retry_policy: &'a Option<RetryPolicy>,
    max_concurrency: Option<u32>,
    rate_per_second: Option<f64>,
    ordering_key: &'a Option<String>,
}

/// Defines [`Target`]: one variant per kind, each with its own fields and
/// the fields every target has.
macro_rules! target {
    ($( $(#[$vm:meta])* $variant:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? } )*) => {
        /// Where a rule sends the events it matches. `type` says which.
        #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
        #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
        pub enum Target {
            $(
                $(#[$vm])*
                $variant {
                    /// Unique within the rule: letters, digits, `.`, `-`, `_`.
                    #[schema(pattern = "^[.\\-_A-Za-z0-9]{1,64}$")]
                    id: String,
                    $( $(#[$fm])* $field: $ty, )*
                    /// A constant JSON value sent instead of the event.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    #[schema(value_type = Option<serde_json::Value>)]
                    input: Option<Value>,
                    /// A JSON path: the part of the event sent (EventBridge's InputPath).
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    #[schema(max_length = 256, pattern = "^\\$")]
                    input_path: Option<String>,
                    /// A template filled from the event (EventBridge's InputTransformer).
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    input_transformer: Option<InputTransformer>,
                    /// Retries and maximum age; then the dead-letter queue.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    retry_policy: Option<RetryPolicy>,
                    /// Deliveries in flight at once across the transformer's replicas, 1 to 1000.
                    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "sluice_model::input::int::optional")]
                    #[schema(minimum = 1, maximum = 1000)]
                    max_concurrency: Option<u32>,
                    /// Deliveries per second across replicas, 0.01 to 10000. Unset: unlimited.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    #[schema(minimum = 0.01, maximum = 10000)]
                    rate_per_second: Option<f64>,
                    /// A JSON path into the event (e.g. `$.detail.account`):
                    /// deliveries whose events have the same value there are
                    /// made one at a time, in order; other values in parallel.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    #[schema(max_length = 256, pattern = "^\\$")]
                    ordering_key: Option<String>,
                },
            )*
        }

        impl Target {
            fn common(&self) -> Common<'_> {
                match self {
                    $( Self::$variant { id, input, input_path, input_transformer, retry_policy,
                        max_concurrency, rate_per_second, ordering_key, .. } => Common {
                        id, input, input_path, input_transformer, retry_policy,
                        max_concurrency: *max_concurrency, rate_per_second: *rate_per_second,
                        ordering_key,
                    }, )*
                }
            }
        }
    };
}

target! {
    /// An HTTP endpoint (EventBridge API destinations).
    Http {
        /// http or https.
        #[schema(max_length = 2048, pattern = "^https?://[^\\s/?#@]+([/?#][^\\s]*)?$")]
        url: String,
        /// POST when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<Method>,
        /// Extra headers (at most 20).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        #[schema(schema_with = string_map::<20>)]
        headers: BTreeMap<String, String>,
        /// Credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<Auth>,
        /// Seconds one attempt may take, 1 to 60. Default 10.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "sluice_model::input::int::optional")]
        #[schema(minimum = 1, maximum = 60)]
        timeout_seconds: Option<u32>,
    }
    /// A sluice queue (create it first with `PUT /v1/queues/{queue}`).
    Queue {
        /// The queue's name.
        #[schema(pattern = "^[-_A-Za-z0-9]{1,80}$")]
        queue: String,
    }
    /// A notifier topic: published to `notify.<topic>`.
    Topic {
        /// The topic's name.
        #[schema(pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$")]
        topic: String,
    }
    /// A workflow started through the orchestrator; its id is the delivery id.
    Workflow {
        /// The workflow type.
        #[schema(pattern = "^[.\\-_A-Za-z0-9]{1,128}$")]
        workflow_type: String,
    }
    /// A Kafka topic on the transformer's brokers (`SLUICE_KAFKA_BROKERS`).
    Kafka {
        /// The topic (it must exist).
        #[schema(pattern = "^[._A-Za-z0-9-]{1,249}$")]
        topic: String,
        /// JSON path into the event whose value keys the record (e.g.
        /// `$.detail.id`); one key, one partition. Absent: no key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 256, pattern = "^\\$")]
        key_path: Option<String>,
    }
}

/// `PUT /v1/buses/{bus}/rules/{name}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// An EventBridge event pattern (the whole language; at most 4096
    /// bytes). A rule has an event pattern or a schedule.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub event_pattern: Option<serde_json::Map<String, Value>>,
    /// Instead of an event pattern: when the rule fires, `rate(5 minutes)`
    /// or `cron(0 12 * * ? *)` (EventBridge's syntax). Each tick sends one
    /// "Scheduled Event" to the targets.
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^\\s*(rate|cron)\\(")]
    pub schedule: Option<String>,
    /// The IANA time zone a cron schedule is read in (e.g. `Europe/Berlin`). Default UTC.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub schedule_timezone: Option<String>,
    /// ENABLED (default) or DISABLED.
    #[serde(default)]
    pub state: Option<RuleState>,
    /// At most 512 characters.
    #[serde(default)]
    #[schema(max_length = 512, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    pub description: Option<String>,
    /// At most 5, ids unique.
    #[serde(default)]
    #[schema(max_items = 5)]
    pub targets: Vec<Target>,
}

/// A rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rule {
    /// Its bus.
    pub bus: String,
    /// Its name.
    pub name: String,
    /// Its event pattern (absent for a scheduled rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub event_pattern: Option<Value>,
    /// Its schedule (absent for a rule with an event pattern).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The time zone of its schedule (absent when UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_timezone: Option<String>,
    /// ENABLED or DISABLED.
    pub state: RuleState,
    /// What it is for.
    pub description: String,
    /// Its targets (secrets redacted).
    pub targets: Vec<Target>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Incremented by every change.
    pub version: u64,
}

/// One page of rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulePage {
    /// Rules in name order.
    pub rules: Vec<Rule>,
    /// Pass as `next` for the following page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn to_json_text(at: &str, v: &Value) -> Result<String, ApiError> {
    serde_json::to_string(v).map_err(|e| ApiError::Invalid(FieldError::new(at, e.to_string())))
}

/// The target as the transformer takes it.
pub fn target_to_proto(t: &Target) -> Result<v1::Target, ApiError> {
    use v1::target::{Destination as D, Input as I};
    let c = t.common();
    let destination = match t {
        Target::Http {
            url,
            method,
            headers,
            auth,
            timeout_seconds,
            ..
        } => D::Http(v1::HttpTarget {
            url: url.clone(),
            method: method
                .map(|m| {
                    serde_json::to_value(m)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .unwrap_or_default(),
            headers: headers.clone().into_iter().collect(),
            auth: auth.as_ref().map(|a| v1::HttpAuth {
                kind: Some(match a {
                    Auth::ApiKey { header, value } => v1::http_auth::Kind::ApiKey(v1::ApiKeyAuth {
                        header: header.clone(),
                        value: value.clone(),
                    }),
                    Auth::Basic { username, password } => {
                        v1::http_auth::Kind::Basic(v1::BasicAuth {
                            username: username.clone(),
                            password: password.clone(),
                        })
                    }
                    Auth::OauthClientCredentials {
                        token_url,
                        client_id,
                        client_secret,
                        scope,
                    } => v1::http_auth::Kind::OauthClientCredentials(v1::OAuthClientCredentials {
                        token_url: token_url.clone(),
                        client_id: client_id.clone(),
                        client_secret: client_secret.clone(),
                        scope: scope.clone().unwrap_or_default(),
                    }),
                }),
            }),
            timeout_seconds: *timeout_seconds,
        }),
        Target::Queue { queue, .. } => D::Queue(v1::QueueTarget {
            queue: queue.clone(),
        }),
        Target::Topic { topic, .. } => D::Topic(v1::TopicTarget {
            topic: topic.clone(),
        }),
        Target::Workflow { workflow_type, .. } => D::Workflow(v1::WorkflowTarget {
            workflow_type: workflow_type.clone(),
        }),
        Target::Kafka {
            topic, key_path, ..
        } => D::Kafka(v1::KafkaTarget {
            topic: topic.clone(),
            key_path: key_path.clone().unwrap_or_default(),
        }),
    };
    let given = [
        c.input.is_some(),
        c.input_path.is_some(),
        c.input_transformer.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(ApiError::BadRequest(FieldError::new(
            "",
            "give at most one of input, input_path and input_transformer",
        )));
    }
    let input = if let Some(v) = c.input {
        Some(I::InputJson(to_json_text("/input", v)?))
    } else if let Some(p) = c.input_path {
        Some(I::InputPath(p.clone()))
    } else {
        c.input_transformer.as_ref().map(|tr| {
            I::InputTransformer(v1::InputTransformer {
                input_paths_map: tr.input_paths_map.clone().into_iter().collect(),
                input_template: tr.input_template.clone(),
            })
        })
    };
    Ok(v1::Target {
        id: c.id.to_string(),
        destination: Some(destination),
        input,
        retry_policy: c.retry_policy.as_ref().map(|r| v1::RetryPolicy {
            maximum_retry_attempts: r.maximum_retry_attempts,
            maximum_event_age_seconds: r.maximum_event_age_seconds,
        }),
        max_concurrency: c.max_concurrency,
        rate_per_second: c.rate_per_second,
        ordering_key: c.ordering_key.clone().unwrap_or_default(),
    })
}

fn method_of(text: &str) -> Option<Method> {
    serde_json::from_value(Value::String(text.to_ascii_uppercase())).ok()
}

/// The target as the API shows it.
pub fn target_from_proto(t: v1::Target) -> Target {
    use v1::target::{Destination as D, Input as I};
    let (input, input_path, input_transformer) = match t.input {
        None => (None, None, None),
        Some(I::InputJson(text)) => (serde_json::from_str(&text).ok(), None, None),
        Some(I::InputPath(p)) => (None, Some(p), None),
        Some(I::InputTransformer(tr)) => (
            None,
            None,
            Some(InputTransformer {
                input_paths_map: tr.input_paths_map.into_iter().collect(),
                input_template: tr.input_template,
            }),
        ),
    };
    let retry_policy = t.retry_policy.map(|r| RetryPolicy {
        maximum_retry_attempts: r.maximum_retry_attempts,
        maximum_event_age_seconds: r.maximum_event_age_seconds,
    });
    let (id, max_concurrency, rate_per_second) = (t.id, t.max_concurrency, t.rate_per_second);
    let ordering_key = (!t.ordering_key.is_empty()).then_some(t.ordering_key);
    // Every stored target has a destination; a missing one reads as a workflow without a type.
    match t
        .destination
        .unwrap_or(D::Workflow(v1::WorkflowTarget::default()))
    {
        D::Http(h) => Target::Http {
            id,
            url: h.url,
            method: method_of(&h.method),
            headers: h.headers.into_iter().collect(),
            auth: h.auth.and_then(|a| a.kind).map(|k| match k {
                v1::http_auth::Kind::ApiKey(k) => Auth::ApiKey {
                    header: k.header,
                    value: k.value,
                },
                v1::http_auth::Kind::Basic(b) => Auth::Basic {
                    username: b.username,
                    password: b.password,
                },
                v1::http_auth::Kind::OauthClientCredentials(o) => Auth::OauthClientCredentials {
                    token_url: o.token_url,
                    client_id: o.client_id,
                    client_secret: o.client_secret,
                    scope: (!o.scope.is_empty()).then_some(o.scope),
                },
            }),
            timeout_seconds: h.timeout_seconds,
            input,
            input_path,
            input_transformer,
            retry_policy,
            max_concurrency,
            rate_per_second,
            ordering_key,
        },
        D::Queue(q) => Target::Queue {
            id,
            queue: q.queue,
            input,
            input_path,
            input_transformer,
            retry_policy,
            max_concurrency,
            rate_per_second,
            ordering_key,
        },
        D::Topic(tp) => Target::Topic {
            id,
            topic: tp.topic,
            input,
            input_path,
            input_transformer,
            retry_policy,
            max_concurrency,
            rate_per_second,
            ordering_key,
        },
        D::Workflow(w) => Target::Workflow {
            id,
            workflow_type: w.workflow_type,
            input,
            input_path,
            input_transformer,
            retry_policy,
            max_concurrency,
            rate_per_second,
            ordering_key,
        },
        D::Kafka(k) => Target::Kafka {
            id,
            topic: k.topic,
            key_path: (!k.key_path.is_empty()).then_some(k.key_path),
            input,
            input_path,
            input_transformer,
            retry_policy,
            max_concurrency,
            rate_per_second,
            ordering_key,
        },
    }
}

/// The rule as the transformer takes it.
pub fn rule_to_proto(bus: &str, name: &str, input: &RuleInput) -> Result<v1::Rule, ApiError> {
    let targets = input
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            target_to_proto(t).map_err(|e| match e {
                ApiError::BadRequest(f) => ApiError::BadRequest(f.under(&format!("/targets/{i}"))),
                ApiError::Invalid(f) => ApiError::Invalid(f.under(&format!("/targets/{i}"))),
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v1::Rule {
        bus: bus.to_string(),
        name: name.to_string(),
        event_pattern: match &input.event_pattern {
            Some(p) => to_json_text("/event_pattern", &Value::Object(p.clone()))?,
            None => String::new(),
        },
        schedule: input.schedule.clone().unwrap_or_default(),
        schedule_timezone: input.schedule_timezone.clone().unwrap_or_default(),
        state: match input.state {
            None | Some(RuleState::Enabled) => v1::RuleState::Enabled as i32,
            Some(RuleState::Disabled) => v1::RuleState::Disabled as i32,
        },
        description: input.description.clone().unwrap_or_default(),
        targets,
        ..Default::default()
    })
}

/// The rule as the API shows it.
pub fn rule_from_proto(r: v1::Rule) -> Rule {
    Rule {
        event_pattern: (!r.event_pattern.is_empty())
            .then(|| serde_json::from_str(&r.event_pattern).unwrap_or(Value::Null)),
        schedule: (!r.schedule.is_empty()).then_some(r.schedule),
        schedule_timezone: (!r.schedule_timezone.is_empty()).then_some(r.schedule_timezone),
        state: if r.state == v1::RuleState::Disabled as i32 {
            RuleState::Disabled
        } else {
            RuleState::Enabled
        },
        bus: r.bus,
        name: r.name,
        description: r.description,
        targets: r.targets.into_iter().map(target_from_proto).collect(),
        created_at: r.created_at,
        updated_at: r.updated_at,
        version: r.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_round_trip_through_the_grpc_form() {
        let t: Target = serde_json::from_value(json!({
            "type": "http", "id": "hook", "url": "https://example.com/x", "method": "PUT",
            "headers": {"x-a": "1"}, "auth": {"type": "basic", "username": "u", "password": "p"},
            "timeout_seconds": 3, "input_path": "$.detail",
            "retry_policy": {"maximum_retry_attempts": 2}, "max_concurrency": 4, "rate_per_second": 2.5
        }))
        .unwrap();
        let back = target_from_proto(target_to_proto(&t).unwrap());
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&t).unwrap()
        );
        let q: Target = serde_json::from_value(json!({"type": "queue", "id": "q", "queue": "jobs",
            "input_transformer": {"InputPathsMap": {"a": "$.id"}, "InputTemplate": "<a>"}}))
        .unwrap();
        let back = target_from_proto(target_to_proto(&q).unwrap());
        assert_eq!(back.common().id, "q");
        assert!(back.common().input_transformer.is_some());
    }

    #[test]
    fn unknown_and_misplaced_fields_are_refused() {
        let r: Result<Target, _> = serde_json::from_value(
            json!({"type": "queue", "id": "q", "queue": "j", "url": "http://x"}),
        );
        assert!(r.is_err(), "a queue target has no url");
        let r: Result<Target, _> = serde_json::from_value(json!({"type": "ftp", "id": "q"}));
        assert!(r.is_err());
        let two: Target = serde_json::from_value(json!({"type": "topic", "id": "t", "topic": "x",
            "input": {"a": 1}, "input_path": "$.a"}))
        .unwrap();
        assert!(matches!(
            target_to_proto(&two),
            Err(ApiError::BadRequest(_))
        ));
    }
}
