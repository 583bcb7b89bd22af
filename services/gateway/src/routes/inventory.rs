//! `PUT /v1/inventory/{sku}` (admin) and `GET /v1/inventory/{sku}`.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use sluice_model::order::check_sku_path;
use sluice_model::FieldError;
use sluice_store::inventory::Stock;
use utoipa::ToSchema;

use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::Shared;

/// Largest stock level that can be set.
const MAX_STOCK: i64 = 1_000_000_000;

/// `PUT /v1/inventory/{sku}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockInput {
    /// Units available, 0 to 1e9.
    #[serde(deserialize_with = "sluice_model::input::int::required")]
    #[schema(minimum = 0, maximum = 1000000000)]
    pub available: i64,
}

/// Sets the units available for a SKU.
#[utoipa::path(put, path = "/v1/inventory/{sku}", tag = "inventory", request_body = StockInput,
    params(("sku" = String, Path, pattern = "^[-_.A-Za-z0-9]{1,64}$")),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn put_stock(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(sku): Path<String>,
    body: JsonBody,
) -> Result<Json<Stock>, ApiError> {
    principal.require(scope::ADMIN)?;
    check_sku_path(&sku)?;
    let input: StockInput = body.parse()?;
    if !(0..=MAX_STOCK).contains(&input.available) {
        return Err(FieldError::new("/available", format!("must be 0 to {MAX_STOCK}")).into());
    }
    Ok(Json(state.store.set_stock(&sku, input.available).await?))
}

/// The stock of a SKU.
#[utoipa::path(get, path = "/v1/inventory/{sku}", tag = "inventory",
    params(("sku" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get_stock(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(sku): Path<String>,
) -> Result<Json<Stock>, ApiError> {
    principal.require(scope::INVENTORY_READ)?;
    let not_found = || ApiError::NotFound(format!("no stock recorded for {sku:?}"));
    if check_sku_path(&sku).is_err() {
        return Err(not_found());
    }
    state
        .store
        .stock(&sku)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}
