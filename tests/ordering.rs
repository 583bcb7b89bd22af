//! Ordered delivery end to end: a target with an `ordering_key` delivers
//! the deliveries of one message group one at a time, in the order they
//! were stored, while other groups go on in parallel; a failing group holds
//! back only itself; a transformer SIGKILLed mid-way changes nothing of
//! that. Real NATS JetStream, DynamoDB Local, the services, and an HTTP
//! receiver that records when each request starts and ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use sluice_e2e::{assert_eventually, Stack};
use sluice_transformer::deliver::kafka::murmur2;

/// One request: the group, its number, the delivery id, start and end.
#[derive(Debug, Clone)]
struct Seen {
    account: String,
    n: u64,
    delivery_id: String,
    start: Instant,
    end: Instant,
    status: u16,
}

#[derive(Default)]
struct Book {
    seen: Mutex<Vec<Seen>>,
    /// Requests of the failing group so far.
    failing: Mutex<u32>,
    open: Mutex<bool>,
}

const FAILING: &str = "acct-bad";
/// How many times the failing group's first delivery is refused.
const REFUSALS: u32 = 4;

async fn receive(State(book): State<Arc<Book>>, headers: HeaderMap, body: String) -> StatusCode {
    let start = Instant::now();
    while !*book.open.lock().unwrap() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let event: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let account = event["detail"]["account"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tokio::time::sleep(Duration::from_millis(25)).await;
    let status = if account == FAILING {
        let mut f = book.failing.lock().unwrap();
        *f += 1;
        if *f <= REFUSALS {
            503
        } else {
            200
        }
    } else {
        200
    };
    book.seen.lock().unwrap().push(Seen {
        account,
        n: event["detail"]["n"].as_u64().unwrap_or(u64::MAX),
        delivery_id: headers
            .get("sluice-delivery-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        start,
        end: Instant::now(),
        status,
    });
    StatusCode::from_u16(status).unwrap()
}

fn partition(account: &str) -> u32 {
    (murmur2(account.as_bytes()) as u32 & 0x7fff_ffff) % 16
}

fn created(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_transformer_deliveries_created "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// Posts event `n` of every group, each once the one before it has been
/// routed, so the deliveries are stored in this order.
async fn post_round(stack: &Stack, accounts: &[String], n: u64) {
    let mut stored = created(&stack.metrics(stack.transformer_port).await);
    for a in accounts {
        let (code, _, r) = stack
            .post(
                "/v1/events",
                &json!({"source": "bank", "detail-type": "Posted", "detail": {"account": a, "n": n}}),
            )
            .await;
        assert_eq!(code, 202, "{r}");
        stored += 1;
        assert_eventually!(
            created(&stack.metrics(stack.transformer_port).await) >= stored,
            "event {a}/{n} routed"
        );
    }
}

#[tokio::test]
async fn one_group_at_a_time_in_order_others_in_parallel_through_failures_and_a_kill() {
    let mut stack = Stack::start(
        "ordering",
        &[
            ("SLUICE_TRANSFORMER_RETRY_BASE", "200ms"),
            ("SLUICE_TRANSFORMER_RETRY_MAX_DELAY", "1s"),
        ],
    )
    .await
    .unwrap();
    let book = Arc::new(Book::default());
    let app = axum::Router::new()
        .route("/orders", post(receive))
        .with_state(book.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/orders", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Five healthy groups, each in a partition of its own and none in the
    // failing group's: a failure may hold back only its own group.
    let mut used = vec![partition(FAILING)];
    let mut accounts = Vec::new();
    for i in 0.. {
        let a = format!("acct-{i}");
        if !used.contains(&partition(&a)) {
            used.push(partition(&a));
            accounts.push(a);
        }
        if accounts.len() == 5 {
            break;
        }
    }
    accounts.push(FAILING.to_string());

    let (code, rule) = stack
        .put(
            "/v1/buses/default/rules/ledger",
            &json!({"event_pattern": {"source": ["bank"]},
                    "targets": [{"type": "http", "id": "ledger", "url": url,
                                 "ordering_key": "$.detail.account", "timeout_seconds": 8}]}),
        )
        .await;
    assert_eq!(code, 201, "{rule}");
    assert_eq!(rule["targets"][0]["ordering_key"], "$.detail.account");
    let (code, p) = stack
        .put(
            "/v1/buses/default/rules/bad",
            &json!({"event_pattern": {"source": ["bank"]},
                    "targets": [{"type": "http", "id": "x", "url": url, "ordering_key": "detail"}]}),
        )
        .await;
    assert_eq!(
        (code, p["pointer"].as_str()),
        (400, Some("/targets/0/ordering_key")),
        "{p}"
    );

    // Store the deliveries in a known order: each event is posted once the
    // one before it has been routed. The receiver holds every request
    // meanwhile, so each group's deliveries wait in its partition.
    const PER_GROUP: u64 = 8;
    for n in 0..PER_GROUP {
        post_round(&stack, &accounts, n).await;
    }
    *book.open.lock().unwrap() = true;
    let total = PER_GROUP as usize * accounts.len();
    let delivered = |book: &Book| {
        let seen = book.seen.lock().unwrap();
        let mut ids: Vec<&str> = seen
            .iter()
            .filter(|s| s.status == 200)
            .map(|s| s.delivery_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    // Killed part way, started again: the deliveries in flight come back
    // after their ack wait, still one at a time per group.
    assert_eventually!(delivered(&book) >= total / 3, "a third delivered");
    stack.kill_transformer().await;
    stack.start_transformer().await.unwrap();
    assert_eventually!(
        delivered(&book) == total,
        "every delivery made: {} of {total}\n{}",
        delivered(&book),
        stack.logs()
    );

    let seen = book.seen.lock().unwrap().clone();
    let mut by_group: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for s in &seen {
        by_group.entry(s.account.as_str()).or_default().push(s);
    }
    for (account, mut reqs) in by_group.clone() {
        reqs.sort_by_key(|s| s.start);
        // In order: each number first arrives after every smaller one (a
        // request repeated after the kill repeats the same number).
        let mut firsts = Vec::new();
        for s in &reqs {
            if !firsts.contains(&s.n) {
                firsts.push(s.n);
            }
        }
        assert_eq!(
            firsts,
            (0..PER_GROUP).collect::<Vec<_>>(),
            "{account}: {reqs:?}"
        );
        // One at a time: no request of the group starts before the
        // previous one ended.
        for w in reqs.windows(2) {
            assert!(w[1].start >= w[0].end, "{account} overlapped: {:?}", w);
        }
    }
    // The failing group was refused, retried and then delivered in order.
    let bad = &by_group[FAILING];
    assert_eq!(
        bad.iter().filter(|s| s.status == 503).count() as u32,
        REFUSALS
    );
    // The other groups did not wait for it: they were done before its
    // first delivery went through.
    let bad_first_ok = bad
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.end)
        .min()
        .unwrap();
    let others_done = seen
        .iter()
        .filter(|s| s.account != FAILING && s.status == 200)
        .filter(|s| s.end < bad_first_ok)
        .count();
    assert!(
        others_done >= total / 3,
        "other groups went on while one failed ({others_done} before its first success)"
    );
    // The target stops being ordered while deliveries wait in its
    // partitions: none is lost, those and the new ones are delivered.
    *book.open.lock().unwrap() = false;
    post_round(&stack, &accounts, 100).await;
    let (code, _) = stack
        .put(
            "/v1/buses/default/rules/ledger",
            &json!({"event_pattern": {"source": ["bank"]},
                    "targets": [{"type": "http", "id": "ledger", "url": url, "timeout_seconds": 8}]}),
        )
        .await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    post_round(&stack, &accounts, 101).await;
    *book.open.lock().unwrap() = true;
    let more = total + 2 * accounts.len();
    assert_eventually!(
        delivered(&book) == more,
        "the deliveries stored before and after the change: {} of {more}\n{}",
        delivered(&book),
        stack.logs()
    );

    // Groups ran in parallel: some requests of different groups overlapped.
    let overlapping = seen.iter().any(|a| {
        seen.iter()
            .any(|b| a.account != b.account && a.start < b.end && b.start < a.end)
    });
    assert!(overlapping, "different groups are delivered in parallel");
}
