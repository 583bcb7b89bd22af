//! Topics end to end: created, read, listed and deleted through the
//! gateway and the notifier; publishes checked as SNS checks them and
//! stored in JetStream before they are acknowledged, against real NATS and
//! DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use sluice_e2e::{Stack, READER_KEY};

/// Creates queue `queue` and subscribes it to `topic` with `extra` fields.
async fn subscribe_queue(stack: &Stack, topic: &str, queue: &str, extra: Value) -> Value {
    let (code, q) = stack.put(&format!("/v1/queues/{queue}"), &json!({})).await;
    assert!(code == 201 || code == 200, "{q}");
    let mut body = json!({"protocol": "queue", "endpoint": queue});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (code, _, sub) = stack
        .post(&format!("/v1/topics/{topic}/subscriptions"), &body)
        .await;
    assert_eq!(code, 201, "{sub}");
    sub
}

/// Receives from `queue` until `n` messages came (deleting each), or
/// panics; then makes sure no more arrive within a second.
async fn receive_exactly(stack: &Stack, queue: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while got.len() < n && std::time::Instant::now() < deadline {
        got.extend(receive_some(stack, queue, 5).await);
    }
    assert_eq!(got.len(), n, "{queue}: {got:?}\n{}", stack.logs());
    let more = receive_some(stack, queue, 1).await;
    assert!(more.is_empty(), "{queue}: more than {n}: {more:?}");
    got
}

/// The sequence of the last message ever stored in `NOTIFY`.
async fn notify_last_seq(stack: &Stack) -> u64 {
    let mut s = stack
        .bus
        .jetstream()
        .get_stream(stack.bus.names().notify())
        .await
        .unwrap();
    s.info().await.unwrap().state.last_sequence
}

async fn receive_some(stack: &Stack, queue: &str, wait: u64) -> Vec<Value> {
    let (code, r) = stack
        .send(
            reqwest::Method::POST,
            &format!("/v1/queues/{queue}/receive"),
            Some(&json!({"wait_time_seconds": wait, "max_messages": 10})),
        )
        .await;
    assert_eq!(code, 200, "{r}");
    let msgs = r["messages"].as_array().cloned().unwrap_or_default();
    for m in &msgs {
        let receipt = m["receipt_handle"].as_str().unwrap();
        assert_eq!(
            stack
                .delete(&format!("/v1/queues/{queue}/messages/{receipt}"))
                .await,
            204
        );
    }
    msgs
}

#[tokio::test]
async fn topics_are_created_read_listed_and_deleted() {
    let stack = Stack::start_with("topics", &[], false).await.unwrap();
    let (code, t) = stack
        .put("/v1/topics/orders", &json!({"display_name": "Shop"}))
        .await;
    assert_eq!(code, 201, "{t}");
    assert_eq!(t["name"], "orders");
    assert_eq!(t["display_name"], "Shop");
    let created_at = t["created_at"].as_str().unwrap().to_string();
    assert!(!created_at.is_empty());
    let (code, t) = stack
        .put("/v1/topics/orders", &json!({"display_name": "Shop 2"}))
        .await;
    assert_eq!(code, 200, "a second PUT updates: {t}");
    assert_eq!(t["display_name"], "Shop 2");
    assert_eq!(t["created_at"], created_at.as_str(), "creation time kept");
    stack.put("/v1/topics/alerts", &json!({})).await;

    let (code, list) = stack.get("/v1/topics").await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alerts", "orders"]);
    let (code, one) = stack.get("/v1/topics/orders").await;
    assert_eq!(code, 200);
    assert_eq!(one["display_name"], "Shop 2");

    // Bad names and attributes are refused, naming what is wrong.
    let (code, p) = stack.put("/v1/topics/has.dot", &json!({})).await;
    assert_eq!(code, 400, "{p}");
    let (code, p) = stack
        .put("/v1/topics/x", &json!({"display_name": "d".repeat(101)}))
        .await;
    assert_eq!(code, 400, "{p}");
    assert_eq!(p["pointer"], "/display_name");
    let (code, p) = stack.put("/v1/topics/x", &json!({"colour": "red"})).await;
    assert!(code == 400 || code == 422, "{code} {p}");
    assert_eq!(stack.get("/v1/topics/x").await.0, 404, "nothing written");

    // A principal without the scope is refused.
    let r = stack
        .http
        .get(format!("{}/v1/topics", stack.url))
        .header("x-api-key", READER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    assert_eq!(stack.delete("/v1/topics/orders").await, 204);
    assert_eq!(stack.get("/v1/topics/orders").await.0, 404);
    assert_eq!(stack.delete("/v1/topics/orders").await, 404);
}

#[tokio::test]
async fn a_publish_reaches_subscribers_raw_or_as_sns_notifications_and_is_checked_as_sns_checks_it()
{
    let stack = Stack::start_with("publish", &[], false).await.unwrap();
    stack.put("/v1/topics/orders", &json!({})).await;
    let raw = subscribe_queue(
        &stack,
        "orders",
        "raw",
        json!({"raw_message_delivery": true}),
    )
    .await;
    assert_eq!(raw["status"], "confirmed");
    assert_eq!(raw["filter_policy_scope"], "MessageAttributes");
    subscribe_queue(&stack, "orders", "wrapped", json!({})).await;
    let attributes = json!({
        "colour": {"Type": "String", "Value": "red"},
        "price": {"Type": "Number", "Value": "12.5"},
        "sizes": {"Type": "String.Array", "Value": "[\"s\", \"m\"]"}
    });
    let (code, _, got) = stack
        .post(
            "/v1/topics/orders/messages",
            &json!({"message": "{\"order\": 42}", "subject": "Order 42", "message_attributes": attributes}),
        )
        .await;
    assert_eq!(code, 202, "{got}");
    let message_id = got["message_id"].as_str().unwrap();

    let r = receive_exactly(&stack, "raw", 1).await;
    assert_eq!(r[0]["body"], "{\"order\": 42}");
    assert_eq!(
        r[0]["message_attributes"], attributes,
        "a raw delivery keeps the attributes beside the body"
    );
    assert_eq!(r[0]["attributes"]["topic"], "orders");
    assert_eq!(r[0]["attributes"]["topic_message_id"], message_id);
    let w = receive_exactly(&stack, "wrapped", 1).await;
    assert!(
        w[0].get("message_attributes").is_none(),
        "in the envelope instead"
    );
    let n: Value = serde_json::from_str(w[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(n["Type"], "Notification");
    assert_eq!(n["MessageId"], message_id);
    assert_eq!(n["TopicArn"], "arn:sluice:sns:local:000000000000:orders");
    assert_eq!(n["Subject"], "Order 42");
    assert_eq!(n["Message"], "{\"order\": 42}");
    assert_eq!(n["MessageAttributes"], attributes);
    let ts = n["Timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && &ts[19..20] == ".",
        "SNS's millisecond UTC timestamp: {ts}"
    );

    // Refused: each names the field, and nothing is stored.
    let stored = notify_last_seq(&stack).await;
    for (body, pointer) in [
        (json!({"message": ""}), "/message"),
        (
            json!({"message": "m", "message_attributes": {"price": {"Type": "Number", "Value": "cheap"}}}),
            "/message_attributes/price/Value",
        ),
        (
            json!({"message": "m", "message_attributes": {"AWS.x": {"Type": "String", "Value": "v"}}}),
            "/message_attributes/AWS.x",
        ),
        (
            json!({"message": "m", "message_attributes": {"b": {"Type": "Binary", "Value": "%%"}}}),
            "/message_attributes/b/Value",
        ),
        (json!({"message": "m", "subject": "two\nlines"}), "/subject"),
        (json!({"message": "m", "subject": " indented"}), "/subject"),
        (
            json!({"message": "m", "message_attributes": {"n": {"Type": "Number", "Value": "1e-400"}}}),
            "/message_attributes/n/Value",
        ),
        (json!({"message": "x".repeat(256 * 1024 + 1)}), ""),
    ] {
        let (code, _, p) = stack.post("/v1/topics/orders/messages", &body).await;
        assert_eq!(code, 422, "{body}: {p}");
        assert_eq!(p["pointer"], pointer, "{p}");
    }
    let (code, _, p) = stack
        .post("/v1/topics/missing/messages", &json!({"message": "m"}))
        .await;
    assert_eq!(code, 404, "{p}");
    assert_eq!(notify_last_seq(&stack).await, stored, "nothing stored");
    assert!(receive_some(&stack, "raw", 1).await.is_empty());
}

#[tokio::test]
async fn a_batch_publishes_each_entry_on_its_own() {
    let stack = Stack::start_with("pubbatch", &[], false).await.unwrap();
    stack.put("/v1/topics/orders", &json!({})).await;
    subscribe_queue(
        &stack,
        "orders",
        "raw",
        json!({"raw_message_delivery": true}),
    )
    .await;
    let (code, _, out) = stack
        .post(
            "/v1/topics/orders/messages/batch",
            &json!({"entries": [
                {"id": "a", "message": "one"},
                {"id": "b", "message": "two", "message_attributes": {"n": {"Type": "Number", "Value": "x"}}},
                {"id": "c", "message": "three"}
            ]}),
        )
        .await;
    assert_eq!(code, 200, "{out}");
    let r = out["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["id"], "a");
    assert!(r[0]["message_id"].is_string(), "{out}");
    assert_eq!(r[1]["id"], "b");
    assert_eq!(r[1]["error_code"], "InvalidParameter");
    assert_eq!(
        r[1]["error_pointer"],
        "/entries/1/message_attributes/n/Value"
    );
    assert!(r[1].get("message_id").is_none());
    assert!(r[2]["message_id"].is_string());
    assert_ne!(r[0]["message_id"], r[2]["message_id"]);
    let mut bodies: Vec<String> = receive_exactly(&stack, "raw", 2)
        .await
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["one", "three"]);

    // The batch itself: 1 to 10 entries with unique ids.
    let stored = notify_last_seq(&stack).await;
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"id": format!("e{i}"), "message": "m"}))
        .collect();
    for (body, pointer) in [
        (json!({"entries": eleven}), "/entries"),
        (json!({"entries": []}), "/entries"),
        (
            json!({"entries": [{"id": "a", "message": "m"}, {"id": "a", "message": "m"}]}),
            "/entries/1/id",
        ),
        (
            json!({"entries": [{"id": "no spaces", "message": "m"}]}),
            "/entries/0/id",
        ),
    ] {
        let (code, _, p) = stack.post("/v1/topics/orders/messages/batch", &body).await;
        assert_eq!(code, 422, "{body}: {p}");
        assert_eq!(p["pointer"], pointer, "{p}");
    }
    assert_eq!(notify_last_seq(&stack).await, stored, "nothing more stored");
}

#[tokio::test]
async fn filter_policies_pick_each_subscriptions_messages_and_unsubscribing_stops_them() {
    let stack = Stack::start_with("fanout", &[], false).await.unwrap();
    stack.put("/v1/topics/shop", &json!({})).await;
    subscribe_queue(&stack, "shop", "all", json!({"raw_message_delivery": true})).await;
    subscribe_queue(
        &stack,
        "shop",
        "red",
        json!({"raw_message_delivery": true, "filter_policy": {"colour": ["red"]}}),
    )
    .await;
    let big = subscribe_queue(
        &stack,
        "shop",
        "big",
        json!({"raw_message_delivery": true, "filter_policy_scope": "MessageBody",
               "filter_policy": {"total": [{"numeric": [">=", 100]}]}}),
    )
    .await;
    subscribe_queue(
        &stack,
        "shop",
        "blues",
        json!({"raw_message_delivery": true, "filter_policy": {"colour": [{"wildcard": "bl*e"}]}}),
    )
    .await;
    let publish = |body: &'static str, colour: Option<&'static str>| {
        let stack = &stack;
        async move {
            let mut m = json!({"message": body});
            if let Some(c) = colour {
                m["message_attributes"] = json!({"colour": {"Type": "String", "Value": c}});
            }
            let (code, _, r) = stack.post("/v1/topics/shop/messages", &m).await;
            assert_eq!(code, 202, "{r}");
        }
    };
    publish(r#"{"total": 150}"#, Some("red")).await;
    publish(r#"{"total": 50}"#, Some("blue")).await;
    publish(r#"{"total": 500}"#, None).await;
    publish("not json", Some("red")).await;

    let bodies = |msgs: Vec<Value>| {
        let mut b: Vec<String> = msgs
            .iter()
            .map(|m| m["body"].as_str().unwrap().to_string())
            .collect();
        b.sort();
        b
    };
    assert_eq!(receive_exactly(&stack, "all", 4).await.len(), 4);
    assert_eq!(
        bodies(receive_exactly(&stack, "red", 2).await),
        ["not json", r#"{"total": 150}"#]
    );
    assert_eq!(
        bodies(receive_exactly(&stack, "big", 2).await),
        [r#"{"total": 150}"#, r#"{"total": 500}"#]
    );
    assert_eq!(
        bodies(receive_exactly(&stack, "blues", 1).await),
        [r#"{"total": 50}"#]
    );

    let (code, list) = stack.get("/v1/topics/shop/subscriptions").await;
    assert_eq!(code, 200);
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 4);

    // Subscribing the same endpoint again returns the same subscription;
    // with other attributes it is a conflict.
    let (code, _, again) = stack
        .post(
            "/v1/topics/shop/subscriptions",
            &json!({"protocol": "queue", "endpoint": "big", "raw_message_delivery": true,
                    "filter_policy_scope": "MessageBody",
                    "filter_policy": {"total": [{"numeric": [">=", 100]}]}}),
        )
        .await;
    assert_eq!(code, 201, "{again}");
    assert_eq!(again["subscription_id"], big["subscription_id"]);
    let (code, _, p) = stack
        .post(
            "/v1/topics/shop/subscriptions",
            &json!({"protocol": "queue", "endpoint": "big"}),
        )
        .await;
    assert_eq!(code, 409, "{p}");
    let (_, list) = stack.get("/v1/topics/shop/subscriptions").await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 4);
    let id = big["subscription_id"].as_str().unwrap();
    assert_eq!(
        stack
            .delete(&format!("/v1/topics/shop/subscriptions/{id}"))
            .await,
        204
    );
    assert_eq!(
        stack
            .delete(&format!("/v1/topics/shop/subscriptions/{id}"))
            .await,
        404
    );
    publish(r#"{"total": 900}"#, None).await;
    receive_exactly(&stack, "all", 1).await;
    assert!(
        receive_some(&stack, "big", 1).await.is_empty(),
        "unsubscribed"
    );

    // Bad subscriptions are refused, naming the field; nothing is stored.
    for (body, code, pointer) in [
        (
            json!({"protocol": "sms", "endpoint": "all"}),
            400,
            "/protocol",
        ),
        (
            json!({"protocol": "queue", "endpoint": "nope"}),
            400,
            "/endpoint",
        ),
        (
            json!({"protocol": "queue", "endpoint": "all", "filter_policy": {"colour": "red"}}),
            400,
            "/filter_policy/colour",
        ),
        (
            json!({"protocol": "queue", "endpoint": "all", "filter_policy_scope": "Body"}),
            400,
            "/filter_policy_scope",
        ),
        (
            json!({"protocol": "queue", "endpoint": "all", "filter_policy": {"colour": [{"wildcard": "*r*e*d*"}]}}),
            400,
            "/filter_policy/colour/0/wildcard",
        ),
    ] {
        let (got, _, p) = stack.post("/v1/topics/shop/subscriptions", &body).await;
        assert_eq!(got, code, "{body}: {p}");
        assert_eq!(p["pointer"], pointer, "{p}");
    }
    let (code, _, _) = stack
        .post(
            "/v1/topics/missing/subscriptions",
            &json!({"protocol": "queue", "endpoint": "all"}),
        )
        .await;
    assert_eq!(code, 404);
    let (_, list) = stack.get("/v1/topics/shop/subscriptions").await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 3);

    // A deleted topic takes its subscriptions with it.
    assert_eq!(stack.delete("/v1/topics/shop").await, 204);
    stack.put("/v1/topics/shop", &json!({})).await;
    let (_, list) = stack.get("/v1/topics/shop/subscriptions").await;
    assert_eq!(list["subscriptions"], json!([]));
}

#[tokio::test]
async fn fifo_topics_keep_each_groups_order_and_drop_duplicates_within_the_window() {
    let stack = Stack::start_with("fifo", &[], false).await.unwrap();
    let (code, t) = stack.put("/v1/topics/orders.fifo", &json!({})).await;
    assert_eq!(code, 201, "{t}");
    assert_eq!(t["fifo_topic"], true);
    assert_eq!(t["content_based_deduplication"], false);
    assert_eq!(t["deduplication_window_seconds"], 300);
    // The name decides; a request that says otherwise is refused.
    let (code, p) = stack
        .put("/v1/topics/plain", &json!({"fifo_topic": true}))
        .await;
    assert_eq!(code, 400, "{p}");
    assert_eq!(p["pointer"], "/fifo_topic");
    let (code, p) = stack
        .put(
            "/v1/topics/plain",
            &json!({"content_based_deduplication": true}),
        )
        .await;
    assert_eq!(code, 400, "{p}");
    // Only queues subscribe to a FIFO topic.
    let (code, _, p) = stack
        .post(
            "/v1/topics/orders.fifo/subscriptions",
            &json!({"protocol": "https", "endpoint": "https://example.com/hook"}),
        )
        .await;
    assert_eq!(code, 400, "{p}");
    assert_eq!(p["pointer"], "/protocol");
    subscribe_queue(&stack, "orders.fifo", "ordered", json!({})).await;
    subscribe_queue(
        &stack,
        "orders.fifo",
        "ordered-raw",
        json!({"raw_message_delivery": true}),
    )
    .await;

    // A group is required, and a de-duplication id without content-based
    // de-duplication; a standard topic takes neither.
    for (body, pointer) in [
        (
            json!({"message": "m", "message_deduplication_id": "d"}),
            "/message_group_id",
        ),
        (
            json!({"message": "m", "message_group_id": "g"}),
            "/message_deduplication_id",
        ),
        (
            json!({"message": "m", "message_group_id": "g", "message_deduplication_id": "d".repeat(129)}),
            "/message_deduplication_id",
        ),
    ] {
        let (code, _, p) = stack.post("/v1/topics/orders.fifo/messages", &body).await;
        assert_eq!(code, 422, "{body}: {p}");
        assert_eq!(p["pointer"], pointer, "{p}");
    }
    stack.put("/v1/topics/plain", &json!({})).await;
    let (code, _, p) = stack
        .post(
            "/v1/topics/plain/messages",
            &json!({"message": "m", "message_group_id": "g"}),
        )
        .await;
    assert_eq!(code, 422, "{p}");
    assert_eq!(p["pointer"], "/message_group_id");

    // Four groups published at once, each in batches (stored faster than
    // they are fanned out, so a backlog forms); each batch repeats two of
    // its messages (a publisher's retry), and a single publish repeats one
    // more: repeats are acknowledged as duplicates with the original's id
    // and sequence number.
    const PER_GROUP: usize = 24;
    let publishers = (0..4).map(|g| {
        let stack = &stack;
        async move {
            let mut sequence = Vec::new();
            for b in 0..PER_GROUP / 8 {
                let entries: Vec<Value> = (0..10)
                    .map(|e| {
                        let i = b * 8 + e % 8;
                        json!({"id": format!("e{e}"), "message": format!("g{g}-{i}"),
                               "message_group_id": format!("g{g}"),
                               "message_deduplication_id": format!("g{g}-{i}")})
                    })
                    .collect();
                let (code, _, batch) = stack
                    .post(
                        "/v1/topics/orders.fifo/messages/batch",
                        &json!({"entries": entries}),
                    )
                    .await;
                assert_eq!(code, 200, "{batch}");
                let results = batch["results"].as_array().unwrap();
                for (e, r) in results.iter().enumerate() {
                    assert_eq!(r["duplicate"], e >= 8, "{batch}");
                    if e >= 8 {
                        assert_eq!(r["message_id"], results[e - 8]["message_id"]);
                        assert_eq!(r["sequence_number"], results[e - 8]["sequence_number"]);
                    } else {
                        sequence.push(
                            r["sequence_number"]
                                .as_str()
                                .unwrap()
                                .parse::<u64>()
                                .unwrap(),
                        );
                    }
                }
            }
            let again = json!({"message": format!("g{g}-0"), "message_group_id": format!("g{g}"),
                               "message_deduplication_id": format!("g{g}-0")});
            let (code, _, again) = stack.post("/v1/topics/orders.fifo/messages", &again).await;
            assert_eq!(code, 202, "{again}");
            assert_eq!(again["duplicate"], true, "{again}");
            assert_eq!(
                again["sequence_number"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
                sequence[0]
            );
            assert!(sequence.windows(2).all(|w| w[0] < w[1]), "{sequence:?}");
        }
    });
    futures::future::join_all(publishers).await;
    // One at a time too.
    for i in 0..8 {
        let body = json!({"message": format!("g9-{i}"), "message_group_id": "g9",
                          "message_deduplication_id": format!("g9-{i}")});
        let (code, _, p) = stack.post("/v1/topics/orders.fifo/messages", &body).await;
        assert_eq!((code, p["duplicate"].clone()), (202, json!(false)), "{p}");
    }

    let total = 4 * PER_GROUP + 8;
    let wrapped = receive_exactly(&stack, "ordered", total).await;
    let raw = receive_exactly(&stack, "ordered-raw", total).await;
    // Each group's messages arrive in the order published, each once.
    for (queue, got) in [("ordered", &wrapped), ("ordered-raw", &raw)] {
        let mut last: std::collections::HashMap<String, (usize, u64)> = Default::default();
        for m in got.iter() {
            let group = m["attributes"]["message_group_id"]
                .as_str()
                .unwrap()
                .to_string();
            let seq: u64 = m["attributes"]["sequence_number"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let text = if queue == "ordered" {
                let n: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
                assert_eq!(n["SequenceNumber"], m["attributes"]["sequence_number"]);
                n["Message"].as_str().unwrap().to_string()
            } else {
                m["body"].as_str().unwrap().to_string()
            };
            let (g, i) = text.split_once('-').unwrap();
            assert_eq!(g, group);
            let i: usize = i.parse().unwrap();
            if let Some((before, before_seq)) = last.get(&group) {
                assert_eq!(
                    i,
                    before + 1,
                    "{queue}: {group} out of order or repeated: {text} after {before}"
                );
                assert!(seq > *before_seq);
            } else {
                assert_eq!(i, 0, "{queue}: {group} starts with {text}");
            }
            last.insert(group, (i, seq));
        }
        assert_eq!(last.len(), 5, "{queue}: every group");
    }

    // Content-based de-duplication: the same message text is a duplicate.
    let (code, _) = stack
        .put(
            "/v1/topics/orders.fifo",
            &json!({"content_based_deduplication": true}),
        )
        .await;
    assert_eq!(code, 200);
    let body = json!({"message": "same", "message_group_id": "g"});
    let (_, _, a) = stack.post("/v1/topics/orders.fifo/messages", &body).await;
    let (_, _, b) = stack.post("/v1/topics/orders.fifo/messages", &body).await;
    assert_eq!(
        (a["duplicate"].clone(), b["duplicate"].clone()),
        (json!(false), json!(true)),
        "{a} {b}"
    );
    receive_exactly(&stack, "ordered-raw", 1).await;
}
