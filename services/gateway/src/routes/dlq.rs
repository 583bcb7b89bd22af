//! `GET /v1/dlq` (paged) and `POST /v1/dlq/redrive` (admin).

use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use sluice_bus::dlq::{Page, RedriveReport};
use sluice_model::FieldError;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::Shared;

/// Paging of the DLQ listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Cursor: the `next` of the previous page. Default: from the start.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1 to 100. Default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// Lists dead letters with their reason, attempts and payload.
#[utoipa::path(get, path = "/v1/dlq", tag = "dlq", params(ListParams),
    responses((status = 200, body = Object), (status = 403, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    principal.require(scope::ADMIN)?;
    let Query(params) = params.map_err(|e| ApiError::BadParameter(e.body_text()))?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadParameter("limit must be 1 to 100".into()));
    }
    Ok(Json(
        state
            .bus
            .dlq_list(
                u64::try_from(params.after.unwrap_or(0))
                    .map_err(|_| ApiError::BadParameter("after must not be negative".into()))?,
                limit,
            )
            .await?,
    ))
}

/// `POST /v1/dlq/redrive` body: no `ids` redrives everything (up to `limit`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveInput {
    /// Ids to redrive (as listed; 1 to 1000); absent means all.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 1000)]
    pub ids: Option<Vec<String>>,
    /// At most this many per call (1 to 10,000). Default 1,000.
    #[serde(default, deserialize_with = "sluice_model::input::int::optional")]
    #[schema(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
}

/// Re-publishes dead letters to their queue and removes them from the DLQ.
#[utoipa::path(post, path = "/v1/dlq/redrive", tag = "dlq", request_body = RedriveInput,
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn redrive(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    body: JsonBody,
) -> Result<Json<RedriveReport>, ApiError> {
    principal.require(scope::ADMIN)?;
    let input: RedriveInput = body.parse()?;
    let limit = input.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(FieldError::new("/limit", "must be 1 to 10000").into());
    }
    if let Some(ids) = &input.ids {
        if ids.is_empty() || ids.len() > 1000 {
            return Err(FieldError::new("/ids", "must hold 1 to 1000 ids").into());
        }
    }
    Ok(Json(
        state.bus.dlq_redrive(input.ids.as_deref(), limit).await?,
    ))
}
