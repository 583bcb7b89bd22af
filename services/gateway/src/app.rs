//! The router and the whole middleware stack, in one place.
//!
//! Outermost first: request id (set, propagated) → observe (span with
//! trace and request ids, parent from `traceparent`; request metrics) →
//! panic → 500 problem → load shedding at the in-flight limit (503) →
//! timeout (504) → body limit → per route: authentication and per-principal
//! throttling → handler.

use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Json, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::{field, info_span, Instrument};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::routes::{dlq, events, health, inventory, orders, patterns};
use crate::Shared;

#[derive(OpenApi)]
#[openapi(
    info(title = "sluice API", description = "Events, orders, stock and dead letters."),
    modifiers(&Security),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

struct Security;
impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "api_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
            );
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        }
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

fn api_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(events::post_events))
        .routes(routes!(events::get_event))
        .routes(routes!(orders::post_order))
        .routes(routes!(orders::get_order))
        .routes(routes!(inventory::put_stock, inventory::get_stock))
        .routes(routes!(dlq::list))
        .routes(routes!(dlq::redrive))
        .routes(routes!(patterns::test_pattern))
        .routes(routes!(patterns::test_filter_policy))
        .routes(routes!(patterns::test_input_transformer))
}

/// The gateway's router with every layer.
pub fn app(state: Shared) -> Router {
    let (api, doc) = api_routes().split_for_parts();
    let api = api.route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let doc = std::sync::Arc::new(doc);
    let public = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json((*doc).clone()) }
            }),
        );
    let x_request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(public)
        .merge(api)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(
            usize::try_from(state.config.body_limit).unwrap_or(usize::MAX),
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_oversized,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    x_request_id.clone(),
                    MakeRequestUuid,
                ))
                .layer(PropagateRequestIdLayer::new(x_request_id))
                .layer(middleware::from_fn(observe))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal("handler panicked".into()).into_response()
                }))
                .layer(HandleErrorLayer::new(overload_error))
                .load_shed()
                .concurrency_limit(state.config.max_in_flight)
                .timeout(state.config.request_timeout),
        )
        .with_state(state)
}

async fn overload_error(err: BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout.into_response()
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("sluice.gateway.shed").increment(1);
        ApiError::Overloaded.into_response()
    } else {
        ApiError::Internal(err.to_string()).into_response()
    }
}

/// One span per request (child of the caller's `traceparent`), carrying
/// the request and trace ids into every log line; request metrics.
async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = crate::routes::request_id(req.headers())
        .unwrap_or("")
        .to_string();
    let span = info_span!(
        "sluice.gateway.request",
        otel.name = format!("{method} {route}"),
        http.method = %method,
        http.route = %route,
        request_id = %request_id,
        trace_id = field::Empty,
        http.status = field::Empty,
    );
    sluice_telemetry::set_parent(&span, sluice_telemetry::http_context(req.headers()));
    span.record("trace_id", sluice_telemetry::trace_id_of(&span));
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.status", status.as_u16());
    let elapsed = started.elapsed();
    let status_label = status.as_u16().to_string();
    metrics::counter!("sluice.gateway.requests", "method" => method.to_string(), "route" => route.clone(), "status" => status_label)
        .increment(1);
    metrics::histogram!("sluice.gateway.request.duration.seconds", "method" => method.to_string(), "route" => route)
        .record(elapsed.as_secs_f64());
    if status.is_server_error() {
        span.in_scope(|| {
            tracing::warn!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request failed"
            )
        });
    } else {
        span.in_scope(|| {
            tracing::debug!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request"
            )
        });
    }
    response
}

/// Refuses a body whose declared length is over the limit before reading
/// any of it (a body without a length is cut off at the limit when read).
async fn refuse_oversized(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.config.body_limit) {
        return ApiError::PayloadTooLarge(state.config.body_limit).into_response();
    }
    next.run(req).await
}

/// Authenticates, throttles per principal, and hands the principal on.
async fn authenticate(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let principal = match state.auth.authenticate(req.headers()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state.throttle.check(&principal.name) {
        metrics::counter!("sluice.gateway.throttled").increment(1);
        return e.into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Periodically forgets idle principals' buckets.
pub(crate) async fn shrink_throttle(state: Shared, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => state.throttle.shrink(),
        }
    }
}
