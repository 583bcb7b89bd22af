//! Orders: stock reservation, confirmation, rejection, redelivery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use serde_json::{json, Value};
use sluice_e2e::{assert_eventually, Stack};

async fn set_stock(stack: &Stack, sku: &str, n: i64) {
    let r = stack
        .req(reqwest::Method::PUT, &format!("/v1/inventory/{sku}"))
        .json(&json!({"available": n}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn available(stack: &Stack, sku: &str) -> i64 {
    stack.get(&format!("/v1/inventory/{sku}")).await.1["available"]
        .as_i64()
        .unwrap()
}

async fn place(stack: &Stack, items: Value) -> String {
    let (status, _, body) = stack
        .post(
            "/v1/orders",
            &json!({"customer_id": "cust-1", "currency": "EUR", "items": items}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "PENDING");
    body["order_id"].as_str().unwrap().to_string()
}

async fn settled(stack: &Stack, id: &str) -> Value {
    let path = format!("/v1/orders/{id}");
    assert_eventually!(
        {
            let status = &stack.get(&path).await.1["status"];
            status == "CONFIRMED" || status == "REJECTED"
        },
        "order {id} not settled: {}\n{}",
        stack.get(&path).await.1,
        stack.logs()
    );
    stack.get(&path).await.1
}

#[tokio::test]
async fn an_order_with_enough_stock_is_confirmed_and_stock_taken_once_under_redelivery() {
    let stack = Stack::start("confirm", &[]).await.unwrap();
    set_stock(&stack, "BOOK", 10).await;
    set_stock(&stack, "PEN", 5).await;
    let id = place(
        &stack,
        json!([
            {"sku": "BOOK", "quantity": 3, "unit_price": "12.50"},
            {"sku": "PEN", "quantity": 2, "unit_price": 1.2}
        ]),
    )
    .await;
    let order = settled(&stack, &id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["total"], "39.90");
    assert_eq!(order["history"].as_array().unwrap().len(), 2);
    assert_eq!(available(&stack, "BOOK").await, 7);
    assert_eq!(available(&stack, "PEN").await, 3);

    // Redeliver the same order message (as after a lost ack past the dedupe window).
    let (_, envelope) = stack.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(envelope["order_id"], id.as_str());
    // The order is CONFIRMED in the store before its event is published:
    // wait for the event before taking the bus's contents as the baseline.
    assert_eventually!(
        stack.bus_event_ids().await.len() == 1,
        "the OrderConfirmed event did not reach the bus"
    );
    let original = stack.bus_event_ids().await;
    let payload = json!({
        "version": "0", "id": id, "detail-type": "OrderPlaced", "source": "sluice.orders",
        "account": "000000000000", "time": "2026-01-01T00:00:00Z", "region": "local",
        "resources": [], "detail": {
            "order_id": id, "customer_id": "cust-1", "currency": "EUR", "total_minor": 3990,
            "items": [{"sku": "BOOK", "quantity": 3, "unit_price_minor": 1250},
                      {"sku": "PEN", "quantity": 2, "unit_price_minor": 120}]}
    });
    for n in 0..3 {
        stack
            .bus
            .publish(
                "ingest.order",
                &format!("{id}:again:{n}"),
                serde_json::to_vec(&payload).unwrap().into(),
                Default::default(),
            )
            .await
            .unwrap();
    }
    assert_eventually!(
        stack.stream_messages("INGEST").await == 0,
        "redeliveries not consumed"
    );
    let (_, event) = stack.get(&format!("/v1/events/{id}")).await;
    assert_eq!(event["status"], "processed");
    assert_eq!(available(&stack, "BOOK").await, 7, "stock taken once");
    assert_eq!(available(&stack, "PEN").await, 3);
    let order = stack.get(&format!("/v1/orders/{id}")).await.1;
    assert_eq!(order["history"].as_array().unwrap().len(), 2, "{order}");
    assert_eq!(
        stack.bus_event_ids().await,
        original,
        "the domain event is not duplicated"
    );
}

#[tokio::test]
async fn an_order_without_enough_stock_is_rejected_and_takes_nothing() {
    let stack = Stack::start("reject", &[]).await.unwrap();
    set_stock(&stack, "A", 10).await;
    set_stock(&stack, "B", 1).await;
    let id = place(
        &stack,
        json!([
            {"sku": "A", "quantity": 4, "unit_price": "1"},
            {"sku": "B", "quantity": 2, "unit_price": "1"}
        ]),
    )
    .await;
    let order = settled(&stack, &id).await;
    assert_eq!(order["status"], "REJECTED");
    assert!(
        order["reason"]
            .as_str()
            .unwrap()
            .contains("insufficient stock for B"),
        "{order}"
    );
    assert_eq!(
        available(&stack, "A").await,
        10,
        "the partial reservation was released"
    );
    assert_eq!(available(&stack, "B").await, 1);

    let unknown = place(
        &stack,
        json!([{"sku": "NOPE", "quantity": 1, "unit_price": "1"}]),
    )
    .await;
    let order = settled(&stack, &unknown).await;
    assert_eq!(order["status"], "REJECTED");
    assert!(
        order["reason"].as_str().unwrap().contains("unknown sku"),
        "{order}"
    );
}

#[tokio::test]
async fn concurrent_orders_never_oversell() {
    let stack = Stack::start("oversell", &[]).await.unwrap();
    set_stock(&stack, "HOT", 10).await;
    let ids: Vec<String> = futures::stream::iter(0..25)
        .map(|_| {
            place(
                &stack,
                json!([{"sku": "HOT", "quantity": 1, "unit_price": "5"}]),
            )
        })
        .buffer_unordered(25)
        .collect()
        .await;
    let mut confirmed = 0;
    for id in &ids {
        if settled(&stack, id).await["status"] == "CONFIRMED" {
            confirmed += 1;
        }
    }
    assert_eq!(confirmed, 10);
    assert_eq!(available(&stack, "HOT").await, 0);
}
