//! Kafka targets end to end: events through the gateway, the processor and
//! the bus to a real Apache Kafka broker (KRaft, single node, from
//! `.deps/kafka`), read back with a Kafka client; the broker stopped for a
//! while; a target whose topic is missing dead-lettered by its policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rskafka::client::partition::UnknownTopicHandling;
use rskafka::client::ClientBuilder;
use serde_json::{json, Value};
use sluice_e2e::{assert_eventually, Stack};
use sluice_testkit::Kafka;

/// One record as read back.
#[derive(Debug, Clone)]
struct Got {
    partition: i32,
    key: Option<String>,
    value: Value,
    delivery_id: String,
}

async fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<Got> {
    let client = ClientBuilder::new(vec![bootstrap.to_string()])
        .build()
        .await
        .unwrap();
    let mut out = Vec::new();
    for p in 0..partitions {
        let pc = client
            .partition_client(topic, p, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let mut offset = 0;
        loop {
            let (records, high) = pc.fetch_records(offset, 1..1_000_000, 200).await.unwrap();
            for r in &records {
                let rec = &r.record;
                out.push(Got {
                    partition: p,
                    key: rec
                        .key
                        .as_ref()
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: serde_json::from_slice(rec.value.as_deref().unwrap_or(b"null")).unwrap(),
                    delivery_id: String::from_utf8_lossy(&rec.headers["sluice-delivery-id"])
                        .into_owned(),
                });
                offset = r.offset + 1;
            }
            if records.is_empty() || offset >= high {
                break;
            }
        }
    }
    out
}

async fn post(stack: &Stack, from: usize, n: usize) {
    let entries: Vec<Value> = (from..from + n)
        .map(|i| json!({"source": "shop", "detail-type": "Sold", "detail": {"n": i, "customer": format!("c-{}", i % 10)}}))
        .collect();
    let (code, _, resp) = stack.post("/v1/events", &json!({"entries": entries})).await;
    assert_eq!(code, 202, "{resp}");
}

#[tokio::test]
async fn matched_events_reach_kafka_once_keyed_and_survive_a_broker_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut kafka = Kafka::start(dir.path()).await.unwrap();
    let bootstrap = kafka.bootstrap();
    let stack = Stack::start(
        "kafka",
        &[
            ("SLUICE_KAFKA_BROKERS", bootstrap.as_str()),
            // Retries of a stopped broker come quickly.
            ("SLUICE_TRANSFORMER_RETRY_BASE", "200ms"),
            ("SLUICE_TRANSFORMER_RETRY_MAX_DELAY", "1s"),
        ],
    )
    .await
    .unwrap();
    let client = ClientBuilder::new(vec![bootstrap.clone()])
        .build()
        .await
        .unwrap();
    client
        .controller_client()
        .unwrap()
        .create_topic("sales", 3, 1, 5_000)
        .await
        .unwrap();

    let (code, rule) = stack
        .put(
            "/v1/buses/default/rules/to-kafka",
            &json!({"event_pattern": {"source": ["shop"]},
                    "targets": [{"type": "kafka", "id": "sales", "topic": "sales", "key_path": "$.detail.customer"}]}),
        )
        .await;
    assert_eq!(code, 201, "{rule}");
    assert_eq!(rule["targets"][0]["key_path"], "$.detail.customer");
    // A bad topic name or key path is a 400 naming the field.
    for (target, pointer) in [
        (
            json!({"type": "kafka", "id": "k", "topic": "no spaces"}),
            "/targets/0/topic",
        ),
        (
            json!({"type": "kafka", "id": "k", "topic": "ok", "key_path": "$..x"}),
            "/targets/0/key_path",
        ),
    ] {
        let (code, p) = stack
            .put(
                "/v1/buses/default/rules/bad",
                &json!({"event_pattern": {"source": ["shop"]}, "targets": [target]}),
            )
            .await;
        assert_eq!(code, 400, "{p}");
        assert_eq!(p["pointer"], pointer, "{p}");
    }

    post(&stack, 0, 30).await;
    assert_eventually!(
        read_all(&bootstrap, "sales", 3).await.len() >= 30,
        "30 records: {}",
        stack.logs()
    );
    let got = read_all(&bootstrap, "sales", 3).await;
    assert_eq!(got.len(), 30);
    let ids: HashSet<&str> = got.iter().map(|g| g.delivery_id.as_str()).collect();
    assert_eq!(ids.len(), 30, "one record per delivery id");
    // Each record keyed by its customer, in the partition Kafka's Java
    // client picks for that key (toPositive(murmur2(key)) % 3, computed
    // with kafka-clients 4.4.0).
    let java: HashMap<&str, i32> = [
        ("c-0", 2),
        ("c-1", 2),
        ("c-2", 1),
        ("c-3", 1),
        ("c-4", 1),
        ("c-5", 1),
        ("c-6", 0),
        ("c-7", 0),
        ("c-8", 2),
        ("c-9", 1),
    ]
    .into_iter()
    .collect();
    for g in &got {
        let key = g.key.as_deref().unwrap();
        assert_eq!(g.value["detail"]["customer"], key, "{g:?}");
        assert_eq!(g.partition, java[key], "{g:?}");
    }
    // Within a partition a key's records keep their event order only with
    // an ordering key; here each event is there exactly once.
    let mut per_n: BTreeMap<u64, usize> = BTreeMap::new();
    for g in &got {
        *per_n
            .entry(g.value["detail"]["n"].as_u64().unwrap())
            .or_default() += 1;
    }
    assert!(per_n.values().all(|c| *c == 1) && per_n.len() == 30);

    // The broker away for a while: deliveries are retried, then made once.
    kafka.stop().await;
    post(&stack, 30, 10).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    kafka.resume().await.unwrap();
    assert_eventually!(
        read_all(&bootstrap, "sales", 3).await.len() >= 40,
        "the 10 sent while the broker was down: {}",
        stack.logs()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = read_all(&bootstrap, "sales", 3).await;
    let ids: HashSet<&str> = got.iter().map(|g| g.delivery_id.as_str()).collect();
    assert_eq!(ids.len(), 40, "every delivery once after the outage");

    // A topic that does not exist, with no retries allowed: dead-lettered
    // with the reason.
    let (code, _) = stack
        .put(
            "/v1/buses/default/rules/to-nowhere",
            &json!({"event_pattern": {"source": ["shop"]},
                    "targets": [{"type": "kafka", "id": "gone", "topic": "no-such-topic",
                                 "retry_policy": {"maximum_retry_attempts": 0}}]}),
        )
        .await;
    assert_eq!(code, 201);
    post(&stack, 40, 1).await;
    let mut dead = Vec::new();
    for _ in 0..100 {
        let (_, page) = stack.get("/v1/dlq?limit=100").await;
        dead = page["entries"].as_array().cloned().unwrap_or_default();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{}",
        dead[0]
    );
}
