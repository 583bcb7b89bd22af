//! The order saga (`SLUICE_ORDER_FLOW=saga`) against real Temporal, NATS,
//! DynamoDB Local and a payment provider served over HTTP by the test:
//! reserve ∥ fraud check → charge → confirm; a declined or failing
//! payment, a fraud refusal or short stock compensates what was done, and
//! the stock never leaks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use sluice_e2e::Stack;

/// The payment provider: `POST /charges` (idempotent by
/// `Idempotency-Key`; customer `declined` gets 402, `flaky` always 503)
/// and `POST /refunds`.
#[derive(Default)]
struct Provider {
    charges: HashMap<String, Value>,
    attempts: HashMap<String, u32>,
    refunds: Vec<Value>,
}

type Shared = Arc<Mutex<Provider>>;

async fn charge(
    State(p): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut p = p.lock().unwrap();
    let customer = body["customer_id"].as_str().unwrap_or_default().to_string();
    *p.attempts.entry(customer.clone()).or_default() += 1;
    match customer.as_str() {
        "declined" => {
            return (
                StatusCode::PAYMENT_REQUIRED,
                Json(json!({"error": "insufficient funds"})),
            )
        }
        "flaky" => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "down"})),
            )
        }
        _ => {}
    }
    let n = p.charges.len();
    let charge = p
        .charges
        .entry(key)
        .or_insert_with(|| json!({"charge_id": format!("ch_{n}"), "order_id": body["order_id"], "amount": body["amount"]}))
        .clone();
    (StatusCode::CREATED, Json(charge))
}

async fn refund(State(p): State<Shared>, Json(body): Json<Value>) -> StatusCode {
    p.lock().unwrap().refunds.push(body);
    StatusCode::OK
}

async fn provider() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/charges", post(charge))
        .route("/refunds", post(refund))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

async fn order(stack: &Stack, customer: &str, quantity: u32) -> String {
    let (status, _, body) = stack
        .post(
            "/v1/orders",
            &json!({"customer_id": customer, "currency": "EUR",
                    "items": [{"sku": "BOOK-1", "quantity": quantity, "unit_price": "5.00"}]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["order_id"].as_str().unwrap().to_string()
}

async fn settled(stack: &Stack, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, o) = stack.get(&format!("/v1/orders/{id}")).await;
        if o["status"] == "CONFIRMED" || o["status"] == "REJECTED" {
            return o;
        }
        assert!(Instant::now() < deadline, "{o}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn saga_result(stack: &Stack, order_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, w) = stack.get(&format!("/v1/workflows/order-{order_id}")).await;
        assert_eq!(code, 200, "{w}");
        if w["status"] != "RUNNING" {
            assert_eq!(w["status"], "COMPLETED", "{w}");
            return w["result"].clone();
        }
        assert!(Instant::now() < deadline, "{w}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn available(stack: &Stack) -> i64 {
    stack.get("/v1/inventory/BOOK-1").await.1["available"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn the_saga_confirms_or_compensates_and_stock_never_leaks() {
    let (url, payments) = provider().await;
    let stack = Stack::start_with_workflows(
        "saga",
        &[
            ("SLUICE_ORDER_FLOW", "saga"),
            ("SLUICE_PAYMENT_URL", url.as_str()),
            ("SLUICE_FRAUD_BLOCKED_CUSTOMERS", "fraudster"),
            ("SLUICE_FRAUD_MAX_TOTAL", "2000"),
        ],
        true,
    )
    .await
    .unwrap();
    let (code, _) = stack
        .put("/v1/inventory/BOOK-1", &json!({"available": 10}))
        .await;
    assert_eq!(code, 200);

    // Reserved, checked, charged once, confirmed.
    let ok = order(&stack, "alice", 2).await;
    let o = settled(&stack, &ok).await;
    assert_eq!(o["status"], "CONFIRMED", "{o}");
    assert_eq!(available(&stack).await, 8);
    let r = saga_result(&stack, &ok).await;
    assert_eq!(r["status"], "CONFIRMED");
    assert_eq!(payments.lock().unwrap().charges.len(), 1);

    // Each failure rejects the order with its reason and gives the stock back.
    for (customer, quantity, reason) in [
        ("declined", 3, "payment declined: insufficient funds"),
        ("fraudster", 3, "fraud check: customer fraudster is blocked"),
        ("big-spender", 5, "over the limit"),
        ("flaky", 1, "payment failed"),
        ("bob", 100, "insufficient stock for BOOK-1"),
    ] {
        let id = order(&stack, customer, quantity).await;
        let o = settled(&stack, &id).await;
        assert_eq!(o["status"], "REJECTED", "{customer}: {o}");
        assert!(
            o["reason"].as_str().unwrap().contains(reason),
            "{customer}: {o}"
        );
        let r = saga_result(&stack, &id).await;
        assert_eq!(r["status"], "REJECTED", "{customer}: {r}");
        assert_eq!(r["compensated"], json!(["release"]), "{customer}: {r}");
        assert_eq!(available(&stack).await, 8, "{customer}: stock leaked");
    }
    {
        let p = payments.lock().unwrap();
        assert_eq!(p.charges.len(), 1, "only alice was charged");
        assert_eq!(
            p.attempts["flaky"], 3,
            "the failing provider was tried 3 times"
        );
        assert_eq!(p.attempts["declined"], 1, "a decline is not retried");
        assert!(
            !p.attempts.contains_key("fraudster"),
            "a fraud refusal charges nothing"
        );
        assert!(p.refunds.is_empty());
    }

    // The runs replay against the workflow code as it is.
    let declined = {
        let (_, list) = stack.get("/v1/workflows?type=order-saga&limit=100").await;
        list["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["workflow_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let confirmed_id = format!("order-{ok}");
    let rejected_id = declined
        .iter()
        .find(|w| **w != confirmed_id)
        .unwrap()
        .clone();
    stack
        .replay(
            "order-saga",
            &[("confirmed", &confirmed_id), ("rejected", &rejected_id)],
        )
        .await;

    // The settled events reach the bus.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let types: Vec<String> = stack
            .bus_events()
            .await
            .iter()
            .filter_map(|e| e["detail-type"].as_str().map(str::to_string))
            .collect();
        let confirmed = types.iter().filter(|t| *t == "OrderConfirmed").count();
        let rejected = types.iter().filter(|t| *t == "OrderRejected").count();
        if confirmed == 1 && rejected == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "{types:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
