//! Trying routing rules without deploying them: EventBridge's
//! TestEventPattern, SNS filter policies, and input transformers.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_model::FieldError;
use sluice_patterns::sns::{FilterPolicy, Scope};
use sluice_patterns::transform::{Context, Input};
use sluice_patterns::PatternError;
use sluice_proto::v1;
use utoipa::ToSchema;

use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::Shared;

/// `POST /v1/rules/test-pattern` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestPattern {
    /// An EventBridge event pattern.
    #[schema(value_type = Object)]
    pub pattern: Value,
    /// Any JSON object.
    #[schema(value_type = Object)]
    pub event: Value,
}

/// `POST /v1/topics/test-filter-policy` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFilterPolicy {
    /// An SNS subscription filter policy.
    #[schema(value_type = Object)]
    pub filter_policy: Value,
    /// `MessageAttributes` (default) or `MessageBody`.
    #[serde(default)]
    #[schema(value_type = Option<FilterScope>)]
    pub scope: Option<String>,
    /// The body object (MessageBody) or the attributes map (MessageAttributes),
    /// e.g. `{"color": {"Type": "String", "Value": "red"}}`.
    #[schema(value_type = Object)]
    pub message: Value,
}

/// Which part of a message a filter policy applies to.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub enum FilterScope {
    /// The message attributes.
    MessageAttributes,
    /// The message body (JSON).
    MessageBody,
}

/// `POST /v1/rules/test-input-transformer` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestInputTransformer {
    /// `{"InputPath": ...}` or `{"InputPathsMap": {...}, "InputTemplate": "..."}`.
    #[schema(value_type = Object)]
    pub input_transformer: Value,
    /// The event to transform.
    #[schema(value_type = Object)]
    pub event: Value,
}

/// Whether it matched.
#[derive(Debug, Serialize, ToSchema)]
pub struct Matches {
    /// True when the event (message) matches.
    pub matches: bool,
}

/// The rendered target input.
#[derive(Debug, Serialize, ToSchema)]
pub struct Output {
    /// What the target would receive.
    pub output: String,
}

fn invalid(field: &str, e: PatternError) -> ApiError {
    ApiError::BadRequest(FieldError::new(format!("/{field}{}", e.pointer), e.message))
}

fn unmatchable(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid(FieldError::new(format!("/{field}"), e.to_string()))
}

/// Tests an event pattern against an event (EventBridge's TestEventPattern,
/// answered by the transformer, which routes by the same code).
#[utoipa::path(post, path = "/v1/rules/test-pattern", tag = "rules", request_body = TestPattern,
    responses((status = 200, body = Matches), (status = 400, description = "Invalid pattern", body = Problem),
        (status = 422, description = "The event cannot be matched", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn test_pattern(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    body: JsonBody,
) -> Result<Json<Matches>, ApiError> {
    principal.require(scope::RULES_TEST)?;
    let input: TestPattern = body.parse()?;
    if !input.pattern.is_object() {
        return Err(ApiError::BadRequest(FieldError::new(
            "/pattern",
            "must be a JSON object",
        )));
    }
    if !input.event.is_object() {
        return Err(unmatchable("event", "must be a JSON object"));
    }
    let text = |v: &Value| serde_json::to_string(v).map_err(|e| ApiError::Internal(e.to_string()));
    let t = &state.transformer;
    let out = t
        .bus()
        .test_event_pattern(t.request(v1::TestEventPatternRequest {
            event_pattern: text(&input.pattern)?,
            event: text(&input.event)?,
        }))
        .await
        .map_err(|s| match crate::transformer::problem(s, "") {
            // The transformer names the fields of its own request.
            ApiError::BadRequest(f) if f.pointer.starts_with("/event_pattern") => {
                ApiError::BadRequest(FieldError::new(
                    f.pointer.replacen("/event_pattern", "/pattern", 1),
                    f.detail,
                ))
            }
            ApiError::BadRequest(f) => ApiError::Invalid(f),
            other => other,
        })?;
    Ok(Json(Matches {
        matches: out.into_inner().matches,
    }))
}

/// Tests an SNS filter policy against a message.
#[utoipa::path(post, path = "/v1/topics/test-filter-policy", tag = "rules", request_body = TestFilterPolicy,
    responses((status = 200, body = Matches), (status = 400, description = "Invalid policy", body = Problem),
        (status = 422, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn test_filter_policy(
    Extension(principal): Extension<Principal>,
    body: JsonBody,
) -> Result<Json<Matches>, ApiError> {
    principal.require(scope::RULES_TEST)?;
    let input: TestFilterPolicy = body.parse()?;
    let scope = match input.scope.as_deref() {
        None => Scope::MessageAttributes,
        Some(s) => Scope::parse(s).ok_or_else(|| {
            ApiError::Invalid(FieldError::new(
                "/scope",
                "must be MessageAttributes or MessageBody",
            ))
        })?,
    };
    let policy = FilterPolicy::parse(&input.filter_policy, scope)
        .map_err(|e| invalid("filter_policy", e))?;
    let matches = policy
        .matches(&input.message)
        .map_err(|e| unmatchable("message", e))?;
    Ok(Json(Matches { matches }))
}

/// Renders an input transformer (or input path) for an event.
#[utoipa::path(post, path = "/v1/rules/test-input-transformer", tag = "rules", request_body = TestInputTransformer,
    responses((status = 200, body = Output), (status = 400, description = "Invalid transformer", body = Problem),
        (status = 422, description = "The event cannot be rendered", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn test_input_transformer(
    Extension(principal): Extension<Principal>,
    body: JsonBody,
) -> Result<Json<Output>, ApiError> {
    principal.require(scope::RULES_TEST)?;
    let input: TestInputTransformer = body.parse()?;
    let transformer =
        Input::parse(&input.input_transformer).map_err(|e| invalid("input_transformer", e))?;
    if !input.event.is_object() {
        return Err(unmatchable("event", "must be a JSON object"));
    }
    let ctx = Context {
        rule_name: "test-rule".into(),
        rule_arn: format!("sluice:rule/{}/test-rule", principal.name),
        ingestion_time: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    };
    let output = transformer
        .render(&input.event, &ctx)
        .map_err(|e| unmatchable("input_transformer", e))?;
    Ok(Json(Output { output }))
}
