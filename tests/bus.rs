//! The event bus end to end: rules routing events through the gateway, the
//! processor and the transformer to every kind of target, against real
//! NATS, DynamoDB Local and receivers the tests run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{json, Value};
use sluice_e2e::receiver::Receiver;
use sluice_e2e::{assert_eventually, Stack};
use sluice_proto::v1;

fn event(source: &str, n: u64) -> Value {
    json!({"source": source, "detail-type": "Tick", "detail": {"n": n, "sku": format!("SKU-{n}")}})
}

async fn put_rule(stack: &Stack, bus: &str, name: &str, body: Value) -> Value {
    let (code, resp) = stack
        .put(&format!("/v1/buses/{bus}/rules/{name}"), &body)
        .await;
    assert!(code == 200 || code == 201, "PUT rule {name}: {code} {resp}");
    resp
}

async fn post_event(stack: &Stack, body: &Value) -> String {
    let (code, _, resp) = stack.post("/v1/events", body).await;
    assert_eq!(code, 202, "{resp}");
    resp["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_http_target_gets_matched_events_transformed_with_a_stable_delivery_id() {
    let stack = Stack::start("bushttp", &[]).await.unwrap();
    let hook = Receiver::start().await;
    let rule = put_rule(
        &stack,
        "default",
        "big-ticks",
        json!({
            "event_pattern": {"source": ["shop"], "detail": {"n": [{"numeric": [">=", 10]}]}},
            "description": "ticks of ten or more",
            "targets": [{
                "type": "http", "id": "hook", "url": format!("{}/ticks?x=1", hook.url),
                "headers": {"x-team": "ops"},
                "input_transformer": {"input_paths_map": {"n": "$.detail.n", "sku": "$.detail.sku"},
                                      "input_template": "{\"count\": <n>, \"item\": <sku>, \"rule\": <aws.events.rule-name>}"}
            }]
        }),
    )
    .await;
    assert_eq!(rule["state"], "ENABLED");
    assert_eq!(rule["version"], 1);

    let mut matched = Vec::new();
    for n in [5, 10, 20, 3, 42] {
        let id = post_event(&stack, &event("shop", n)).await;
        if n >= 10 {
            matched.push(id);
        }
    }
    post_event(&stack, &event("other", 99)).await;
    assert_eventually!(
        hook.count() >= 3,
        "matched events not delivered\n{}",
        stack.logs()
    );
    // Give a stray delivery of an unmatched event the chance to show up.
    let (_, _, last) = stack.post("/v1/events", &event("shop", 11)).await;
    matched.push(last["id"].as_str().unwrap().to_string());
    assert_eventually!(hook.count() >= 4, "last event not delivered");
    let reqs = hook.requests();
    assert_eq!(
        reqs.len(),
        4,
        "only matching events are delivered: {reqs:?}"
    );
    let mut got: Vec<i64> = reqs
        .iter()
        .map(|r| r.json()["count"].as_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, vec![10, 11, 20, 42]);
    for r in &reqs {
        assert_eq!(r.path, "/ticks?x=1");
        assert_eq!(r.header("x-team"), Some("ops"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json()["rule"], "big-ticks");
        assert!(
            r.header("traceparent").is_some(),
            "the trace continues to the target"
        );
        let event_id = r.header("sluice-event-id").unwrap();
        assert!(matched.iter().any(|m| m == event_id), "{event_id}");
        assert_eq!(r.header("sluice-rule"), Some("big-ticks"));
        assert!(r.header("sluice-delivery-id").unwrap().len() >= 32);
    }
    assert_eq!(
        hook.delivery_ids().len(),
        4,
        "a delivery id per (event, target)"
    );
    let (code, listed) = stack.get("/v1/buses/default/rules").await;
    assert_eq!(code, 200);
    assert_eq!(listed["rules"][0]["name"], "big-ticks");
    assert_eq!(
        stack.stream_messages("DELIVERIES").await,
        0,
        "delivered ones are removed"
    );
}

#[tokio::test]
async fn a_queue_target_feeds_a_queue_that_workers_consume_over_http() {
    let stack = Stack::start("busqueue", &[]).await.unwrap();
    let (code, q) = stack
        .put(
            "/v1/queues/jobs",
            &json!({"visibility_timeout_seconds": 2, "max_receive_count": 2}),
        )
        .await;
    assert_eq!(code, 201, "{q}");
    assert_eq!(q["retention_seconds"], 345_600);
    let (code, _) = stack
        .put(
            "/v1/queues/jobs",
            &json!({"visibility_timeout_seconds": 2, "max_receive_count": 2}),
        )
        .await;
    assert_eq!(code, 200, "a second PUT updates");
    put_rule(
        &stack,
        "default",
        "to-jobs",
        json!({"event_pattern": {"source": ["shop"]},
               "targets": [{"type": "queue", "id": "q", "queue": "jobs", "input_path": "$.detail"}]}),
    )
    .await;
    let event_id = post_event(&stack, &event("shop", 1)).await;

    // Long polling returns as soon as the delivery arrives.
    let (code, got) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/jobs/receive",
            Some(&json!({"wait_time_seconds": 20, "max_messages": 10})),
        )
        .await;
    assert_eq!(code, 200, "{got}");
    let msgs = got["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{got}");
    let m = &msgs[0];
    assert_eq!(
        serde_json::from_str::<Value>(m["body"].as_str().unwrap()).unwrap(),
        json!({"n": 1, "sku": "SKU-1"})
    );
    assert_eq!(m["attributes"]["event_id"], event_id.as_str());
    assert_eq!(m["attributes"]["rule"], "to-jobs");
    assert_eq!(m["receive_count"], 1);
    assert_eq!(m["message_id"], m["attributes"]["delivery_id"]);

    // Invisible while being worked on; visible again after the timeout.
    let (_, none) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/jobs/receive",
            Some(&json!({})),
        )
        .await;
    assert_eq!(none["messages"], json!([]));
    let (_, again) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/jobs/receive",
            Some(&json!({"wait_time_seconds": 10})),
        )
        .await;
    assert_eq!(again["messages"][0]["receive_count"], 2, "{again}");
    let receipt = again["messages"][0]["receipt_handle"]
        .as_str()
        .unwrap()
        .to_string();

    // A receipt of another queue, or no receipt at all, is refused.
    stack.put("/v1/queues/other", &json!({})).await;
    let code = stack
        .delete(&format!("/v1/queues/other/messages/{receipt}"))
        .await;
    assert_eq!(code, 404);
    let code = stack
        .delete("/v1/queues/jobs/messages/bm90LWEtcmVjZWlwdA")
        .await;
    assert_eq!(code, 404);

    // Deleted by its receipt: gone for good.
    let code = stack
        .delete(&format!("/v1/queues/jobs/messages/{receipt}"))
        .await;
    assert_eq!(code, 204);
    let (_, q) = stack.get("/v1/queues/jobs").await;
    assert_eq!(q["messages"], 0, "{q}");

    // Sent directly; visibility changed to 0 makes it visible at once.
    let (code, sent) = stack
        .post(
            "/v1/queues/jobs/messages",
            &json!({"body": "hello", "id": "m-1"}),
        )
        .await
        .map3();
    assert_eq!(code, 200, "{sent}");
    let (_, r1) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/jobs/receive",
            Some(&json!({"wait_time_seconds": 5})),
        )
        .await;
    assert_eq!(r1["messages"][0]["body"], "hello");
    let receipt = r1["messages"][0]["receipt_handle"].as_str().unwrap();
    let (code, _) = stack
        .send(
            reqwest::Method::POST,
            &format!("/v1/queues/jobs/messages/{receipt}/visibility"),
            Some(&json!({"visibility_timeout_seconds": 0})),
        )
        .await;
    assert_eq!(code, 204);
    let (_, r2) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/jobs/receive",
            Some(&json!({"wait_time_seconds": 5})),
        )
        .await;
    assert_eq!(r2["messages"][0]["message_id"], "m-1");
    assert_eq!(r2["messages"][0]["receive_count"], 2);

    // Received more than max_receive_count times: the next receive moves it to the DLQ.
    assert_eventually!(
        {
            let (_, r) = stack
                .send(
                    reqwest::Method::POST,
                    "/v1/queues/jobs/receive",
                    Some(&json!({"wait_time_seconds": 1})),
                )
                .await;
            r["messages"].as_array().unwrap().is_empty() && stack.stream_messages("DLQ").await == 1
        },
        "not dead-lettered after max receives"
    );
    let (_, dlq) = stack.get("/v1/dlq").await;
    assert_eq!(dlq["entries"][0]["id"], "m-1");
    assert_eq!(dlq["entries"][0]["subject"], "queue.jobs");
    // Redrive puts it back in the queue.
    let (code, _, rep) = stack
        .post("/v1/dlq/redrive", &json!({"ids": ["m-1"]}))
        .await;
    assert_eq!(code, 200, "{rep}");
    let (_, back) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/jobs/receive",
            Some(&json!({"wait_time_seconds": 5})),
        )
        .await;
    assert_eq!(back["messages"][0]["body"], "hello", "{back}");

    // A queue a target sends to cannot be deleted; an unused one can.
    assert_eq!(stack.delete("/v1/queues/jobs").await, 409);
    assert_eq!(stack.delete("/v1/queues/other").await, 204);
    assert_eq!(stack.get("/v1/queues/other").await.0, 404);
    let (code, _) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/other/receive",
            Some(&json!({})),
        )
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn queues_reserve_no_storage_and_a_full_queue_refuses_sends() {
    // The seven shared streams reserve 64 MiB each from a store of 8 × 64
    // MiB: a queue that reserved as much would not fit twice.
    let servers = sluice_testkit::Servers::start_opts(false, 8 * (64 << 20))
        .await
        .unwrap();
    let mut stack = Stack::start_on(
        servers,
        "busqfull",
        &[
            ("SLUICE_QUEUE_MAX_BYTES", "64MiB"),
            ("SLUICE_TRANSFORMER_QUEUE_MAX_MESSAGES", "3"),
        ],
        false,
    )
    .await
    .unwrap();
    for n in 0..20 {
        let (code, q) = stack.put(&format!("/v1/queues/q{n}"), &json!({})).await;
        assert_eq!(code, 201, "queue {n}: {q}");
    }
    for n in 0..3 {
        let (code, _, sent) = stack
            .post("/v1/queues/q0/messages", &json!({"body": format!("m{n}")}))
            .await;
        assert_eq!(code, 200, "{sent}");
    }
    let (code, headers, full) = stack
        .post("/v1/queues/q0/messages", &json!({"body": "one too many"}))
        .await;
    assert_eq!(code, 429, "{full}");
    assert_eq!(full["type"], "urn:sluice:problem:queue-full");
    assert!(headers.contains_key("retry-after"));

    // Nothing held was dropped; once one is deleted there is room again.
    let (_, got) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/q0/receive",
            Some(&json!({"max_messages": 10})),
        )
        .await;
    let bodies: Vec<&str> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["m0", "m1", "m2"], "{got}");
    let receipt = got["messages"][0]["receipt_handle"].as_str().unwrap();
    assert_eq!(
        stack
            .delete(&format!("/v1/queues/q0/messages/{receipt}"))
            .await,
        204
    );
    let (code, _, sent) = stack
        .post("/v1/queues/q0/messages", &json!({"body": "m3"}))
        .await;
    assert_eq!(code, 200, "{sent}");
    let (code, _, _) = stack
        .post("/v1/queues/q0/messages", &json!({"body": "m4"}))
        .await;
    assert_eq!(code, 429, "full again");

    // A new bound applies to the queues that exist once the transformer
    // restarts (it declares every queue again).
    stack.kill_transformer().await;
    for (k, v) in stack.env.iter_mut() {
        if k == "SLUICE_TRANSFORMER_QUEUE_MAX_MESSAGES" {
            *v = "5".into();
        }
    }
    stack.start_transformer().await.unwrap();
    assert_eventually!(
        stack
            .post("/v1/queues/q0/messages", &json!({"body": "m4"}))
            .await
            .0
            == 200,
        "the new bound did not apply\n{}",
        stack.logs()
    );
}

trait Map3 {
    fn map3(self) -> (u16, Value);
}
impl Map3 for (u16, reqwest::header::HeaderMap, Value) {
    fn map3(self) -> (u16, Value) {
        (self.0, self.2)
    }
}

#[tokio::test]
async fn a_topic_target_publishes_to_the_topics_subscribers() {
    let stack = Stack::start("bustopic", &[]).await.unwrap();
    stack.put("/v1/topics/alerts", &json!({})).await;
    stack.put("/v1/queues/inbox", &json!({})).await;
    let (code, _, sub) = stack
        .post(
            "/v1/topics/alerts/subscriptions",
            &json!({"protocol": "queue", "endpoint": "inbox"}),
        )
        .await;
    assert_eq!(code, 201, "{sub}");
    // A FIFO topic as a target too: the rule's messages join its order as
    // one group per target.
    stack.put("/v1/topics/alerts.fifo", &json!({})).await;
    stack.put("/v1/queues/ordered", &json!({})).await;
    let (code, _, fifo_sub) = stack
        .post(
            "/v1/topics/alerts.fifo/subscriptions",
            &json!({"protocol": "queue", "endpoint": "ordered"}),
        )
        .await;
    assert_eq!(code, 201, "{fifo_sub}");
    put_rule(
        &stack,
        "default",
        "alerts",
        json!({"event_pattern": {"detail-type": ["Tick"]},
               "targets": [{"type": "topic", "id": "t", "topic": "alerts", "input": {"constant": true}},
                           {"type": "topic", "id": "f", "topic": "alerts.fifo"}]}),
    )
    .await;
    let event_id = post_event(&stack, &event("shop", 1)).await;
    let (code, got) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/inbox/receive",
            Some(&json!({"wait_time_seconds": 20})),
        )
        .await;
    assert_eq!(code, 200, "{got}");
    let m = &got["messages"][0];
    let n: Value = serde_json::from_str(m["body"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {got}\n{}", stack.logs()));
    assert_eq!(n["Type"], "Notification");
    assert_eq!(
        serde_json::from_str::<Value>(n["Message"].as_str().unwrap()).unwrap(),
        json!({"constant": true})
    );
    assert_eq!(m["attributes"]["topic"], "alerts");
    let delivery_id = sluice_model::ids::derive_id(&event_id, "delivery/default/alerts/t");
    assert_eq!(
        n["MessageId"], delivery_id,
        "the delivery id is the message id"
    );
    assert_eq!(m["attributes"]["topic_message_id"], delivery_id);
    assert_eq!(m["attributes"]["subscription"], sub["subscription_id"]);

    let (code, got) = stack
        .send(
            reqwest::Method::POST,
            "/v1/queues/ordered/receive",
            Some(&json!({"wait_time_seconds": 20})),
        )
        .await;
    assert_eq!(code, 200, "{got}");
    let m = &got["messages"][0];
    let n: Value = serde_json::from_str(m["body"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {got}\n{}", stack.logs()));
    assert_eq!(
        n["TopicArn"],
        "arn:sluice:sns:local:000000000000:alerts.fifo"
    );
    assert_eq!(m["attributes"]["topic_message_id"], n["MessageId"]);
    assert!(n["SequenceNumber"].as_str().is_some(), "{n}");
    assert_eq!(
        m["attributes"]["message_group_id"],
        "bus/default/rule/alerts/target/f"
    );
    assert_eq!(m["attributes"]["sequence_number"], n["SequenceNumber"]);
}

#[tokio::test]
async fn a_workflow_target_starts_the_workflow_once_per_delivery() {
    let mut stack = Stack::start_with_workflows(
        "busflow",
        &[
            ("SLUICE_TRANSFORMER_RETRY_BASE", "100ms"),
            ("SLUICE_TRANSFORMER_RETRY_MAX_DELAY", "200ms"),
        ],
        true,
    )
    .await
    .unwrap();
    // The orchestrator is down when the event comes: its delivery waits
    // in the target's retries until it is back.
    stack.kill_orchestrator().await;
    put_rule(
        &stack,
        "default",
        "approve",
        json!({"event_pattern": {"source": ["shop"]},
               "targets": [{"type": "workflow", "id": "wf", "workflow_type": "approval", "input_path": "$.detail"}]}),
    )
    .await;
    let event_id = post_event(
        &stack,
        &json!({"source": "shop", "detail-type": "Tick", "detail": {"taskId": "task-7", "title": "Seven"}}),
    )
    .await;
    let delivery_id = sluice_model::ids::derive_id(&event_id, "delivery/default/approve/wf");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stack.stream_messages("DLQ").await,
        0,
        "retried, not dead-lettered"
    );
    stack.start_orchestrator().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let w = loop {
        let (code, w) = stack.get(&format!("/v1/workflows/{delivery_id}")).await;
        if code == 200 {
            break w;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "workflow not started: {w}\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(w["workflow_type"], "approval");
    assert_eq!(w["status"], "RUNNING", "waiting for its approver: {w}");
    // The delivery id is the workflow id: the same delivery again (a
    // transformer that retries after a lost answer) starts nothing new.
    let mut client = v1::workflows_client::WorkflowsClient::connect(stack.orchestrator_url())
        .await
        .unwrap();
    let again = client
        .start_workflow(v1::StartWorkflowRequest {
            workflow_type: "approval".into(),
            workflow_id: delivery_id.clone(),
            input: json!({"taskId": "task-7"}).to_string(),
            origin: "bus/default/rule/approve/target/wf".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists);
    assert_eventually!(
        stack.stream_messages("DELIVERIES").await == 0,
        "the delivery was not settled\n{}",
        stack.logs()
    );
    assert_eq!(stack.stream_messages("DLQ").await, 0);
    let (_, list) = stack.get("/v1/workflows?type=approval").await;
    assert_eq!(
        list["workflows"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
}

#[tokio::test]
async fn events_go_to_the_bus_they_name() {
    let stack = Stack::start("busnamed", &[]).await.unwrap();
    let hook = Receiver::start().await;
    let (code, bus) = stack
        .put("/v1/buses/orders", &json!({"description": "order events"}))
        .await;
    assert_eq!(code, 201, "{bus}");
    assert_eq!(stack.put("/v1/buses/orders", &json!({})).await.0, 200);
    let (_, buses) = stack.get("/v1/buses").await;
    let names: Vec<&str> = buses["buses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "orders"]);
    let target = |id: &str| json!({"type": "http", "id": id, "url": format!("{}/{id}", hook.url)});
    put_rule(
        &stack,
        "orders",
        "all",
        json!({"event_pattern": {"source": ["shop"]}, "targets": [target("on-orders")]}),
    )
    .await;
    put_rule(
        &stack,
        "default",
        "all",
        json!({"event_pattern": {"source": ["shop"]}, "targets": [target("on-default")]}),
    )
    .await;

    let mut on_orders = event("shop", 1);
    on_orders["event-bus-name"] = json!("orders");
    post_event(&stack, &on_orders).await;
    post_event(&stack, &event("shop", 2)).await;
    assert_eventually!(hook.count() >= 2, "not delivered\n{}", stack.logs());
    let mut paths: Vec<String> = hook.requests().iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/on-default", "/on-orders"],
        "each event only to its own bus's rules"
    );

    let mut unknown = event("shop", 3);
    unknown["event-bus-name"] = json!("nope");
    let (code, _, resp) = stack.post("/v1/events", &unknown).await;
    assert_eq!(code, 404, "{resp}");
    // In a batch, only that entry fails, as in PutEvents.
    let (code, _, resp) = stack
        .post(
            "/v1/events",
            &json!({"entries": [unknown, event("shop", 4)]}),
        )
        .await;
    assert_eq!(code, 202, "{resp}");
    assert_eq!(resp["failed_count"], 1);
    assert_eq!(
        resp["entries"][0]["error_code"],
        "ResourceNotFoundException"
    );
    assert!(resp["entries"][1]["id"].is_string());

    // A bus with rules cannot go; the default bus never can.
    assert_eq!(stack.delete("/v1/buses/orders").await, 409);
    assert_eq!(stack.delete("/v1/buses/default").await, 409);
    assert_eq!(stack.delete("/v1/buses/orders/rules/all").await, 204);
    assert_eq!(stack.delete("/v1/buses/orders").await, 204);
    assert_eq!(stack.get("/v1/buses/orders").await.0, 404);
    assert_eq!(stack.get("/v1/buses/orders/rules").await.0, 404);
}

#[tokio::test]
async fn rules_list_in_pages_by_prefix_and_targets_are_put_and_removed_by_id() {
    let stack = Stack::start("buspages", &[]).await.unwrap();
    let hook = Receiver::start().await;
    for name in ["a-1", "a-2", "a-3", "b-1"] {
        put_rule(
            &stack,
            "default",
            name,
            json!({"event_pattern": {"source": [name]}}),
        )
        .await;
    }
    let (_, p1) = stack.get("/v1/buses/default/rules?prefix=a-&limit=2").await;
    let names = |p: &Value| {
        p["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&p1), ["a-1", "a-2"]);
    let next = p1["next"].as_str().unwrap();
    let (_, p2) = stack
        .get(&format!(
            "/v1/buses/default/rules?prefix=a-&limit=2&next={next}"
        ))
        .await;
    assert_eq!(names(&p2), ["a-3"]);
    assert!(p2["next"].is_null());
    assert_eq!(stack.get("/v1/buses/default/rules?limit=0").await.0, 400);
    // A cursor past the prefix's names ends the listing; one before it starts it.
    let (code, past) = stack
        .get("/v1/buses/default/rules?next=b-1&prefix=a-")
        .await;
    assert_eq!((code, past["rules"].clone()), (200, json!([])));
    let (_, before) = stack.get("/v1/buses/default/rules?next=0&prefix=a-").await;
    assert_eq!(names(&before), ["a-1", "a-2", "a-3"]);
    assert_eq!(stack.get("/v1/buses/default/rules?next=").await.0, 400);

    // Targets by id: added (201), replaced (200), removed (204).
    let t = json!({"type": "http", "id": "h", "url": format!("{}/one", hook.url)});
    let (code, rule) = stack
        .post("/v1/buses/default/rules/a-1/targets", &t)
        .await
        .map3();
    assert_eq!(code, 201, "{rule}");
    assert_eq!(rule["version"], 2);
    let t2 = json!({"type": "http", "id": "h", "url": format!("{}/two", hook.url)});
    let (code, rule) = stack
        .post("/v1/buses/default/rules/a-1/targets", &t2)
        .await
        .map3();
    assert_eq!(code, 200, "{rule}");
    assert_eq!(rule["targets"].as_array().unwrap().len(), 1);
    post_event(
        &stack,
        &json!({"source": "a-1", "detail-type": "x", "detail": {}}),
    )
    .await;
    assert_eventually!(hook.count() == 1, "not delivered");
    assert_eq!(
        hook.requests()[0].path,
        "/two",
        "the replaced target is the one used"
    );
    assert_eq!(
        stack.delete("/v1/buses/default/rules/a-1/targets/h").await,
        204
    );
    assert_eq!(
        stack.delete("/v1/buses/default/rules/a-1/targets/h").await,
        404
    );
    let (_, rule) = stack.get("/v1/buses/default/rules/a-1").await;
    assert_eq!(rule["targets"], json!([]));
}

#[tokio::test]
async fn credentials_reach_the_target_and_secrets_are_never_shown() {
    let stack = Stack::start("busauth", &[]).await.unwrap();
    let hook = Receiver::start().await;
    put_rule(
        &stack,
        "default",
        "secured",
        json!({"event_pattern": {"source": ["shop"]}, "targets": [
            {"type": "http", "id": "key", "url": format!("{}/k", hook.url),
             "auth": {"type": "api_key", "header": "x-secret-key", "value": "k-123"}},
            {"type": "http", "id": "basic", "url": format!("{}/b", hook.url),
             "auth": {"type": "basic", "username": "u", "password": "p"}},
            {"type": "http", "id": "oauth", "url": format!("{}/o", hook.url),
             "auth": {"type": "oauth_client_credentials", "token_url": format!("{}/token", hook.url),
                      "client_id": "cid", "client_secret": "cs", "scope": "events"}}
        ]}),
    )
    .await;
    for n in 0..2 {
        post_event(&stack, &event("shop", n)).await;
    }
    assert_eventually!(hook.count() == 6, "not delivered\n{}", stack.logs());
    for r in hook.requests() {
        match r.path.as_str() {
            "/k" => assert_eq!(r.header("x-secret-key"), Some("k-123")),
            "/b" => assert_eq!(r.header("authorization"), Some("Basic dTpw")),
            "/o" => assert_eq!(
                r.header("authorization"),
                Some("Bearer tok-1"),
                "the token is cached"
            ),
            other => panic!("{other}"),
        }
    }
    let tokens = hook.token_requests();
    assert_eq!(tokens.len(), 1, "one token for both deliveries");
    assert!(tokens[0].body.contains("grant_type=client_credentials"));
    assert_eq!(tokens[0].header("authorization"), Some("Basic Y2lkOmNz"));

    // Reads never show a secret; writing the redacted value back keeps it.
    let (_, rule) = stack.get("/v1/buses/default/rules/secured").await;
    let text = rule.to_string();
    for secret in ["k-123", "\"p\"", "\"cs\""] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let mut back = rule.clone();
    let obj = back.as_object_mut().unwrap();
    for k in ["bus", "name", "created_at", "updated_at", "version"] {
        obj.remove(k);
    }
    put_rule(&stack, "default", "secured", back).await;
    post_event(&stack, &event("shop", 9)).await;
    assert_eventually!(hook.count() == 9, "not delivered after the round trip");
    let last_key = hook
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/k")
        .unwrap();
    assert_eq!(last_key.header("x-secret-key"), Some("k-123"));
}

#[tokio::test]
async fn the_grpc_api_serves_health_and_tests_patterns() {
    let stack = Stack::start_with("busgrpc", &[], false).await.unwrap();
    let url = format!("http://127.0.0.1:{}", stack.grpc_port);
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = v1::event_bus_client::EventBusClient::new(channel.clone());
    let out = client
        .test_event_pattern(v1::TestEventPatternRequest {
            event_pattern: r#"{"detail": {"n": [{"numeric": [">", 1]}]}}"#.into(),
            event: r#"{"detail": {"n": 2}}"#.into(),
        })
        .await
        .unwrap();
    assert!(out.into_inner().matches);
    let err = client
        .test_event_pattern(v1::TestEventPatternRequest {
            event_pattern: r#"{"a": [{"nope": 1}]}"#.into(),
            event: "{}".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // The standard health protocol answers for the services.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["sluice.v1.EventBus", "sluice.v1.Queues", ""] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }
}
