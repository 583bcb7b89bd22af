//! The order saga, an alternative to the processor settling an order
//! itself (`SLUICE_ORDER_FLOW=saga`): reserve the stock and check for
//! fraud in parallel, charge the payment at the payment provider over
//! HTTP, then confirm. Any failure undoes the steps done, in reverse
//! order (refund, then release the stock), and rejects the order with the
//! reason, so no order is left half-done and no stock leaks. Each step
//! is idempotent: a reservation is marked with the order id (it cannot be
//! taken twice), a release gives back only what the order holds, the
//! charge and the refund carry the order's idempotency keys, and the
//! order's status moves only from PENDING.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_model::{Envelope, OrderStatus, PlacedOrder};
use sluice_store::inventory::Reservation;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, ApplicationFailure, WorkflowContext, WorkflowResult};
use temporalio_workflow::{RetryPolicy, WorkflowCancellationToken};
use tracing::Instrument as _;

/// The workflow type.
pub const TYPE: &str = "order-saga";

/// The saga's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Input {
    /// The order.
    pub order: PlacedOrder,
    /// The `OrderPlaced` event it came in (its settled event derives from it).
    pub placed: Envelope,
    /// Attempts at the charge before the order is rejected.
    pub payment_attempts: u32,
}

/// What a step found: done, or refused for good (with the reason).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Verdict {
    /// Done.
    Ok,
    /// Refused: the order cannot go on.
    Refused(String),
}

/// A charge made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Charge {
    /// The provider's charge id, or the refusal.
    pub charge_id: Option<String>,
    /// Why it was refused.
    pub refused: Option<String>,
}

/// What the settle step takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settle {
    /// The order.
    pub order: PlacedOrder,
    /// Its `OrderPlaced` event.
    pub placed: Envelope,
    /// Confirm (`None`) or reject with this reason.
    pub reject: Option<String>,
}

/// A refund to make.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refund {
    /// The order.
    pub order_id: String,
    /// The charge.
    pub charge_id: String,
}

/// How the saga ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    /// `CONFIRMED` or `REJECTED`.
    pub status: String,
    /// Why rejected.
    pub reason: Option<String>,
    /// The compensations made, in order (`refund`, `release`).
    pub compensated: Vec<String>,
}

/// The saga (no state besides its input).
#[workflow]
#[derive(Default)]
pub struct OrderSaga;

fn options(attempts: Option<u32>) -> ActivityOptions {
    // Zero attempts: without limit.
    let retry = RetryPolicy::builder()
        .initial_interval(Duration::from_millis(500))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(30))
        .maximum_attempts(attempts.unwrap_or(0))
        .build();
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(retry)
        .build()
}

/// Compensations and the settlement: retried without limit, and not
/// cancelled with the workflow (once started, an order is settled).
fn must() -> ActivityOptions {
    let mut o = options(None);
    o.cancellation_token = Some(WorkflowCancellationToken::new());
    o
}

fn reason_of(e: &temporalio_workflow::ActivityExecutionError) -> String {
    e.failure()
        .and_then(|f| f.cause.as_deref())
        .map(|c| c.message.clone())
        .unwrap_or_else(|| e.to_string())
}

#[workflow_methods]
impl OrderSaga {
    /// Reserve ∥ fraud check → charge → confirm; compensates on failure.
    #[run(name = "order-saga")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: Input) -> WorkflowResult<Outcome> {
        let order = input.order.clone();
        let (reserved, checked) = temporalio_sdk::workflows::join!(
            ctx.execute_activity(OrderActivities::reserve, order.clone(), options(None)),
            ctx.execute_activity(OrderActivities::fraud_check, order.clone(), options(None)),
        );
        let mut failure: Option<String> = None;
        // The reservation is compensated whatever its outcome: a release
        // gives back only what this order holds.
        match (reserved, checked) {
            (Ok(Verdict::Ok), Ok(Verdict::Ok)) => {}
            (Ok(Verdict::Refused(r)), _) | (_, Ok(Verdict::Refused(r))) => failure = Some(r),
            (Err(e), _) | (_, Err(e)) => failure = Some(reason_of(&e)),
        }
        if ctx.cancellation_token().is_cancelled() && failure.is_none() {
            failure = Some("the order saga was canceled".into());
        }
        let mut charge_id = None;
        if failure.is_none() {
            match ctx
                .execute_activity(
                    OrderActivities::charge,
                    order.clone(),
                    options(Some(input.payment_attempts)),
                )
                .await
            {
                Ok(Charge {
                    charge_id: Some(id),
                    ..
                }) => charge_id = Some(id),
                Ok(Charge { refused, .. }) => {
                    failure = Some(refused.unwrap_or_else(|| "payment refused".into()))
                }
                Err(e) => failure = Some(format!("payment failed: {}", reason_of(&e))),
            }
        }
        if failure.is_none() {
            let settle = Settle {
                order: order.clone(),
                placed: input.placed.clone(),
                reject: None,
            };
            match ctx
                .execute_activity(OrderActivities::settle, settle, must())
                .await?
            {
                Verdict::Ok => {
                    return Ok(Outcome {
                        status: "CONFIRMED".into(),
                        reason: None,
                        compensated: Vec::new(),
                    })
                }
                Verdict::Refused(r) => failure = Some(r),
            }
        }
        // Undo in reverse order: the charge, then the stock.
        let reason = failure.unwrap_or_default();
        let mut compensated = Vec::new();
        if let Some(charge_id) = charge_id {
            let refund = Refund {
                order_id: order.order_id.clone(),
                charge_id,
            };
            ctx.execute_activity(OrderActivities::refund, refund, must())
                .await?;
            compensated.push("refund".to_string());
        }
        ctx.execute_activity(OrderActivities::release, order.clone(), must())
            .await?;
        compensated.push("release".to_string());
        let settle = Settle {
            order,
            placed: input.placed,
            reject: Some(reason.clone()),
        };
        ctx.execute_activity(OrderActivities::settle, settle, must())
            .await?;
        Ok(Outcome {
            status: "REJECTED".into(),
            reason: Some(reason),
            compensated,
        })
    }
}

/// What the saga's activities reach.
#[derive(Debug)]
pub struct OrderActivities {
    /// The store (stock, orders).
    pub store: sluice_store::Store,
    /// JetStream (the settled event).
    pub bus: sluice_bus::Bus,
    /// The payment provider's client.
    pub http: reqwest::Client,
    /// The payment provider (`SLUICE_PAYMENT_URL`).
    pub payment_url: String,
    /// Orders above this total (minor units) are refused as fraud.
    pub fraud_max_total_minor: i64,
    /// Customers refused as fraud.
    pub fraud_customers: Vec<String>,
}

impl OrderActivities {
    /// `POST <payment_url><path>` with `key` as its `Idempotency-Key`, in a
    /// client span whose context the request carries (`traceparent`).
    async fn pay(
        &self,
        path: &str,
        key: String,
        body: serde_json::Value,
    ) -> reqwest::Result<reqwest::Response> {
        let span = tracing::info_span!(
            "sluice.payment.call",
            otel.name = format!("POST {path}"),
            otel.kind = "client",
        );
        async {
            let mut req = self
                .http
                .post(format!("{}{path}", self.payment_url))
                .header("idempotency-key", key)
                .json(&body);
            let mut trace = Vec::new();
            sluice_telemetry::inject_current(|k, v| trace.push((k.to_string(), v)));
            for (k, v) in trace {
                req = req.header(k, v);
            }
            req.send().await
        }
        .instrument(span)
        .await
    }
}

fn retryable(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::from(anyhow::anyhow!("{e}"))
}

fn refused(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::application(ApplicationFailure::non_retryable(e.to_string()))
}

#[activities]
impl OrderActivities {
    /// Reserves each line (a reservation marked with the order id, so a
    /// retry takes nothing twice); refused when stock is short or unknown.
    #[activity(name = "order.reserve")]
    pub async fn reserve(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order: PlacedOrder,
    ) -> Result<Verdict, ActivityError> {
        if let Err(r) = order.check() {
            return Ok(Verdict::Refused(r));
        }
        for item in &order.items {
            let outcome = self
                .store
                .reserve(&item.sku, &order.order_id, item.quantity)
                .await
                .map_err(retryable)?;
            match outcome {
                Reservation::Reserved | Reservation::AlreadyReserved => {}
                Reservation::Insufficient { available } => {
                    return Ok(Verdict::Refused(format!(
                        "insufficient stock for {}: {} requested, {available} available",
                        item.sku, item.quantity
                    )))
                }
                Reservation::UnknownSku => {
                    return Ok(Verdict::Refused(format!("unknown sku {}", item.sku)))
                }
            }
        }
        Ok(Verdict::Ok)
    }

    /// The fraud check: the order's total and its customer against the
    /// configured limits.
    #[activity(name = "order.fraud_check")]
    pub async fn fraud_check(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order: PlacedOrder,
    ) -> Result<Verdict, ActivityError> {
        if self.fraud_customers.contains(&order.customer_id) {
            return Ok(Verdict::Refused(format!(
                "fraud check: customer {} is blocked",
                order.customer_id
            )));
        }
        if order.total_minor > self.fraud_max_total_minor {
            return Ok(Verdict::Refused(format!(
                "fraud check: total {} {} is over the limit",
                order.total_display(),
                order.currency
            )));
        }
        Ok(Verdict::Ok)
    }

    /// Charges the order at the payment provider: `POST <url>/charges`
    /// with the order id as the `Idempotency-Key` (a retry charges once).
    /// A 402 or other 4xx is a refusal; a 5xx or no answer is retried.
    #[activity(name = "order.charge")]
    pub async fn charge(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order: PlacedOrder,
    ) -> Result<Charge, ActivityError> {
        let res = self
            .pay(
                "/charges",
                format!("charge-{}", order.order_id),
                serde_json::json!({
                    "order_id": order.order_id,
                    "customer_id": order.customer_id,
                    "amount": order.total_display(),
                    "currency": order.currency,
                }),
            )
            .await
            .map_err(|e| retryable(format!("the payment provider: {e}")))?;
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        if status.is_success() {
            let id = body["charge_id"]
                .as_str()
                .ok_or_else(|| retryable("the payment provider answered no charge_id"))?;
            return Ok(Charge {
                charge_id: Some(id.to_string()),
                refused: None,
            });
        }
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            let why = body["error"].as_str().unwrap_or("refused").to_string();
            return Ok(Charge {
                charge_id: None,
                refused: Some(format!("payment declined: {why}")),
            });
        }
        Err(retryable(format!("the payment provider answered {status}")))
    }

    /// Refunds a charge: `POST <url>/refunds`, idempotent by the order.
    #[activity(name = "order.refund")]
    pub async fn refund(
        self: Arc<Self>,
        _ctx: ActivityContext,
        refund: Refund,
    ) -> Result<(), ActivityError> {
        let res = self
            .pay(
                "/refunds",
                format!("refund-{}", refund.order_id),
                serde_json::json!({"charge_id": refund.charge_id, "order_id": refund.order_id}),
            )
            .await
            .map_err(|e| retryable(format!("the payment provider: {e}")))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(retryable(format!(
                "the payment provider answered {} to the refund",
                res.status()
            )))
        }
    }

    /// Gives back what the order holds of each line (nothing twice).
    #[activity(name = "order.release")]
    pub async fn release(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order: PlacedOrder,
    ) -> Result<(), ActivityError> {
        for item in &order.items {
            self.store
                .release(&item.sku, &order.order_id, item.quantity)
                .await
                .map_err(retryable)?;
        }
        Ok(())
    }

    /// Moves the order from PENDING to CONFIRMED (or REJECTED with the
    /// reason) and publishes its settled event. An order settled already
    /// another way answers a refusal when confirming (the saga then
    /// undoes its steps).
    #[activity(name = "order.settle")]
    pub async fn settle(
        self: Arc<Self>,
        _ctx: ActivityContext,
        s: Settle,
    ) -> Result<Verdict, ActivityError> {
        let to = if s.reject.is_some() {
            OrderStatus::Rejected
        } else {
            OrderStatus::Confirmed
        };
        self.store
            .transition_order(
                &s.order.order_id,
                OrderStatus::Pending,
                to,
                s.reject.as_deref(),
            )
            .await
            .map_err(retryable)?;
        let current = self
            .store
            .order(&s.order.order_id)
            .await
            .map_err(retryable)?
            .ok_or_else(|| refused(format!("order {} is gone", s.order.order_id)))?;
        if current.status != to {
            return Ok(Verdict::Refused(format!(
                "the order is {} already",
                current.status.as_str()
            )));
        }
        if to == OrderStatus::Confirmed {
            for item in &s.order.items {
                self.store
                    .forget_reservation(&item.sku, &s.order.order_id)
                    .await
                    .map_err(retryable)?;
            }
        }
        if let Some(event) =
            s.order
                .settled_event(&s.placed, current.status, current.reason.as_deref())
        {
            let subject = sluice_bus::subjects::bus(&event.source, &event.detail_type);
            self.bus
                .publish(
                    &subject,
                    &event.id,
                    event.to_bytes().into(),
                    Default::default(),
                )
                .await
                .map_err(retryable)?;
        }
        metrics::counter!("sluice.orchestrator.orders", "status" => current.status.as_str())
            .increment(1);
        Ok(Verdict::Ok)
    }
}
