//! Buses, rules and targets (EventBridge's control plane), served by the
//! transformer over gRPC, and trying patterns, filter policies and
//! transformers before deploying them ([`test`]).

pub mod archives;
pub mod test;
pub mod types;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use sluice_model::names;
use sluice_proto::v1;
use utoipa::IntoParams;

use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::transformer::problem;
use crate::Shared;
use types::{Bus, BusInput, Rule, RuleInput, RulePage, Target};

/// A name in the path of a write: a bad one is a 400.
pub(crate) fn check_path(
    what: &str,
    check: fn(&str) -> Result<(), String>,
    value: &str,
) -> Result<(), ApiError> {
    check(value).map_err(|e| ApiError::BadParameter(format!("{what} in the path: {e}")))
}

fn created(is_new: bool) -> StatusCode {
    if is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// The buses.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BusList {
    /// `default` first, then the custom buses by name.
    pub buses: Vec<Bus>,
}

/// Lists the buses.
#[utoipa::path(get, path = "/v1/buses", tag = "buses",
    responses((status = 200, body = BusList)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list_buses(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<BusList>, ApiError> {
    principal.require(scope::RULES_READ)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .list_buses(t.request(v1::ListBusesRequest {}))
        .await?;
    Ok(Json(BusList {
        buses: out.into_inner().buses.into_iter().map(Bus::from).collect(),
    }))
}

/// Creates a custom bus (201), or changes its description (200).
#[utoipa::path(put, path = "/v1/buses/{bus}", tag = "buses", request_body = BusInput,
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$")),
    responses((status = 200, body = Bus), (status = 201, body = Bus), (status = 409, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn put_bus(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(bus): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    check_path("the bus name", names::check_bus, &bus)?;
    let input: BusInput = body.parse()?;
    let t = &state.transformer;
    let out = t
        .bus()
        .put_bus(t.request(v1::PutBusRequest {
            name: bus,
            description: input.description.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    let bus = out
        .bus
        .map(Bus::from)
        .ok_or_else(|| ApiError::Internal("no bus in the answer".into()))?;
    Ok((created(out.created), Json(bus)).into_response())
}

/// A bus.
#[utoipa::path(get, path = "/v1/buses/{bus}", tag = "buses",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$")),
    responses((status = 200, body = Bus), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get_bus(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(bus): Path<String>,
) -> Result<Json<Bus>, ApiError> {
    principal.require(scope::RULES_READ)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .get_bus(t.request(v1::GetBusRequest { name: bus }))
        .await?;
    Ok(Json(out.into_inner().into()))
}

/// Deletes a custom bus that has no rules.
#[utoipa::path(delete, path = "/v1/buses/{bus}", tag = "buses",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn delete_bus(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(bus): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    let t = &state.transformer;
    t.bus()
        .delete_bus(t.request(v1::DeleteBusRequest { name: bus }))
        .await?;
    state.buses.forget();
    Ok(StatusCode::NO_CONTENT)
}

/// Paging and filtering of rules.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RuleListParams {
    /// Only rules whose name starts with this.
    #[param(pattern = "^[.\\-_A-Za-z0-9]{0,64}$")]
    pub prefix: Option<String>,
    /// Page size, 1 to 100. Default 50.
    #[param(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "query_int")]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(pattern = "^[.\\-_A-Za-z0-9]{1,64}$")]
    pub next: Option<String>,
}

/// A query integer, also written `5.0`.
fn query_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| D::Error::custom("limit must be an integer"))?;
    if n.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&n) {
        return Err(D::Error::custom("limit must be an integer from 1 to 100"));
    }
    Ok(Some(n as u32))
}

/// Lists a bus's rules in name order, a page at a time.
#[utoipa::path(get, path = "/v1/buses/{bus}/rules", tag = "rules",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"), RuleListParams),
    responses((status = 200, body = RulePage), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list_rules(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(bus): Path<String>,
    params: Result<Query<RuleListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RulePage>, ApiError> {
    principal.require(scope::RULES_READ)?;
    let Query(params) = params.map_err(|e| ApiError::BadParameter(e.body_text()))?;
    if params.next.as_deref() == Some("") {
        return Err(ApiError::BadParameter("next must not be empty".into()));
    }
    let limit = params.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadParameter("limit must be 1 to 100".into()));
    }
    let t = &state.transformer;
    let out = t
        .bus()
        .list_rules(t.request(v1::ListRulesRequest {
            bus,
            prefix: params.prefix.unwrap_or_default(),
            limit,
            next: params.next.unwrap_or_default(),
        }))
        .await
        .map_err(|s| match problem(s, "") {
            // The listing's problems are about its query parameters.
            ApiError::BadRequest(f) => {
                ApiError::BadParameter(f.to_string().trim_start_matches('/').to_string())
            }
            other => other,
        })?
        .into_inner();
    Ok(Json(RulePage {
        rules: out.rules.into_iter().map(types::rule_from_proto).collect(),
        next: (!out.next.is_empty()).then_some(out.next),
    }))
}

/// Creates (201) or replaces (200) a rule with its targets. Every replica
/// of the transformer routes by the change within a second.
#[utoipa::path(put, path = "/v1/buses/{bus}/rules/{name}", tag = "rules", request_body = RuleInput,
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"),
           ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 200, body = Rule), (status = 201, body = Rule),
        (status = 400, description = "Invalid pattern or target", body = Problem),
        (status = 404, description = "No such bus", body = Problem),
        (status = 409, description = "A limit is reached", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn put_rule(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name)): Path<(String, String)>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    check_path("the bus name", names::check_bus, &bus)?;
    check_path("the rule name", names::check_rule, &name)?;
    let input: RuleInput = body.parse()?;
    let rule = types::rule_to_proto(&bus, &name, &input)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .put_rule(t.request(v1::PutRuleRequest { rule: Some(rule) }))
        .await?
        .into_inner();
    let rule = out
        .rule
        .ok_or_else(|| ApiError::Internal("no rule in the answer".into()))?;
    Ok((created(out.created), Json(types::rule_from_proto(rule))).into_response())
}

/// A rule (secrets redacted).
#[utoipa::path(get, path = "/v1/buses/{bus}/rules/{name}", tag = "rules",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"), ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 200, body = Rule), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get_rule(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<Json<Rule>, ApiError> {
    principal.require(scope::RULES_READ)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .get_rule(t.request(v1::GetRuleRequest { bus, name }))
        .await?;
    Ok(Json(types::rule_from_proto(out.into_inner())))
}

/// Deletes a rule; deliveries its targets still hold are discarded.
#[utoipa::path(delete, path = "/v1/buses/{bus}/rules/{name}", tag = "rules",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"), ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn delete_rule(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    let t = &state.transformer;
    t.bus()
        .delete_rule(t.request(v1::DeleteRuleRequest { bus, name }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a target to a rule (201), or replaces the one with its id (200).
#[utoipa::path(post, path = "/v1/buses/{bus}/rules/{name}/targets", tag = "rules", request_body = Target,
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"), ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 200, body = Rule), (status = 201, body = Rule),
        (status = 400, description = "Invalid target", body = Problem),
        (status = 404, body = Problem), (status = 409, description = "The rule has 5 targets", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn put_target(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name)): Path<(String, String)>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    let target: Target = body.parse()?;
    let target = types::target_to_proto(&target)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .put_target(t.request(v1::PutTargetRequest {
            bus,
            rule: name,
            target: Some(target),
        }))
        .await?
        .into_inner();
    let rule = out
        .rule
        .ok_or_else(|| ApiError::Internal("no rule in the answer".into()))?;
    Ok((created(out.created), Json(types::rule_from_proto(rule))).into_response())
}

/// Removes a target from a rule; deliveries it still holds are discarded.
#[utoipa::path(delete, path = "/v1/buses/{bus}/rules/{name}/targets/{id}", tag = "rules",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"), ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$"), ("id" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 204, description = "Removed"), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn remove_target(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    let t = &state.transformer;
    t.bus()
        .remove_target(t.request(v1::RemoveTargetRequest {
            bus,
            rule: name,
            id,
        }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
