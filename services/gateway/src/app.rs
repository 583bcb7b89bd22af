//! The router and the whole middleware stack, in one place.
//!
//! Outermost first: request id (set, propagated) → observe (span with
//! trace and request ids, parent from `traceparent`; request metrics; the
//! access log line) → panic → 500 problem → CORS (answers preflights,
//! decorates every response) → load shedding at the in-flight limit (503)
//! → body limit → per route: timeout (504; long polls get theirs plus the
//! longest wait) → authentication and per-principal throttling → handler.

use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Json, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::{field, info_span, Instrument};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::routes::rules::archives;
use crate::routes::rules::test as patterns;
use crate::routes::{
    dlq, events, files, health, inventory, orders, queues, rules, tasks, topics, workflows,
};
use crate::Shared;

#[derive(OpenApi)]
#[openapi(
    info(title = "sluice API", description = "Events, orders, stock, dead letters, buses, rules, targets, queues and topics."),
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
    let mut doc = api_routes().split_for_parts().1;
    doc.merge(long_poll_routes().split_for_parts().1);
    doc.merge(link_routes().split_for_parts().1);
    crate::openapi::complete(&mut doc);
    doc
}

/// Routes that may wait (long polling): their timeout adds the longest wait.
/// Links sent to subscribers: their token is the credential.
fn link_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(topics::confirm))
        .routes(routes!(
            topics::unsubscribe_link,
            topics::unsubscribe_one_click
        ))
        .routes(routes!(workflows::decision_page, workflows::decide))
}

fn long_poll_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(queues::receive))
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
        .routes(routes!(rules::list_buses))
        .routes(routes!(rules::put_bus, rules::get_bus, rules::delete_bus))
        .routes(routes!(rules::list_rules))
        .routes(routes!(
            rules::put_rule,
            rules::get_rule,
            rules::delete_rule
        ))
        .routes(routes!(rules::put_target))
        .routes(routes!(rules::remove_target))
        .routes(routes!(archives::list_archives))
        .routes(routes!(
            archives::put_archive,
            archives::get_archive,
            archives::delete_archive
        ))
        .routes(routes!(archives::list_replays, archives::start_replay))
        .routes(routes!(archives::get_replay))
        .routes(routes!(archives::cancel_replay))
        .routes(routes!(queues::list))
        .routes(routes!(queues::put, queues::get, queues::delete))
        .routes(routes!(queues::send))
        .routes(routes!(queues::delete_message))
        .routes(routes!(queues::change_visibility))
        .routes(routes!(topics::list))
        .routes(routes!(topics::put, topics::get, topics::delete))
        .routes(routes!(topics::publish))
        .routes(routes!(topics::publish_batch))
        .routes(routes!(topics::subscribe, topics::list_subscriptions))
        .routes(routes!(topics::unsubscribe))
        .routes(routes!(topics::rotate_secret))
        .routes(routes!(tasks::create, tasks::list))
        .routes(routes!(tasks::get, tasks::update, tasks::delete))
        .routes(routes!(files::create))
        .routes(routes!(files::get))
        .routes(routes!(workflows::list))
        .routes(routes!(workflows::start, workflows::get))
        .routes(routes!(workflows::signal))
        .routes(routes!(workflows::cancel))
}

fn cors(config: &crate::config::CorsConfig) -> Option<CorsLayer> {
    if config.origins.is_empty() {
        return None;
    }
    let origins = if config.origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    let names = |list: &[String]| -> Vec<HeaderName> {
        list.iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(
                config
                    .methods
                    .iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect::<Vec<_>>(),
            )
            .allow_headers(names(&config.headers))
            .expose_headers(names(&config.expose_headers))
            .max_age(config.max_age)
            .allow_credentials(config.credentials),
    )
}

/// The gateway's router with every layer.
pub fn app(state: Shared) -> Router {
    let (api, mut doc) = api_routes().split_for_parts();
    let (long_poll, long_doc) = long_poll_routes().split_for_parts();
    doc.merge(long_doc);
    let (links, links_doc) = link_routes().split_for_parts();
    doc.merge(links_doc);
    crate::openapi::complete(&mut doc);
    let normal = state.config.request_timeout;
    let longest_wait = Duration::from_secs(queues::MAX_WAIT_SECONDS);
    let api = api
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overload_error))
                .timeout(normal),
        )
        .merge(
            long_poll.layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(overload_error))
                    .timeout(normal + longest_wait),
            ),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(
            links.layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(overload_error))
                    .timeout(normal),
            ),
        );
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
                .layer(middleware::from_fn_with_state(state.clone(), observe))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal("handler panicked".into()).into_response()
                }))
                .option_layer(cors(&state.config.cors))
                .layer(HandleErrorLayer::new(overload_error))
                .load_shed()
                .concurrency_limit(state.config.max_in_flight),
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

/// Who made a request, as the authentication layer found out (for the
/// access log, which sits outside it).
#[derive(Debug, Clone)]
pub(crate) struct PrincipalName(pub String);

/// One span per request (child of the caller's `traceparent`), carrying
/// the request and trace ids into every log line and named in the
/// response's W3C `traceresponse` header; request metrics; one access log
/// line per request.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
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
    let mut response = next.run(req).instrument(span.clone()).await;
    if let Some(value) = sluice_telemetry::traceresponse(&span)
        .and_then(|v| axum::http::HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert("traceresponse", value);
    }
    let status = response.status();
    span.record("http.status", status.as_u16());
    let elapsed = started.elapsed();
    let status_label = status.as_u16().to_string();
    metrics::counter!("sluice.gateway.requests", "method" => method.to_string(), "route" => route.clone(), "status" => status_label)
        .increment(1);
    metrics::histogram!("sluice.gateway.request.duration.seconds", "method" => method.to_string(), "route" => route.clone())
        .record(elapsed.as_secs_f64());
    let principal = response
        .extensions()
        .get::<PrincipalName>()
        .map(|p| p.0.as_str())
        .unwrap_or("-");
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if state.config.access_log || status.is_server_error() {
        let trace_id = sluice_telemetry::trace_id_of(&span);
        span.in_scope(|| {
            if status.is_server_error() {
                tracing::warn!(target: "sluice::access", %method, route = %route, status = status.as_u16(),
                    latency_ms, principal, request_id = %request_id, trace_id = %trace_id, "request failed");
            } else {
                tracing::info!(target: "sluice::access", %method, route = %route, status = status.as_u16(),
                    latency_ms, principal, request_id = %request_id, trace_id = %trace_id, "request");
            }
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
    let name = PrincipalName(principal.name.clone());
    req.extensions_mut().insert(principal);
    let mut response = next.run(req).await;
    response.extensions_mut().insert(name);
    response
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
