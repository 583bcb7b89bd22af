//! Every metric the Helm chart's dashboards and alert rules name is one the
//! services really export: the whole stack runs a little of everything (an
//! event, a rule delivering to a queue, a topic fanning out to a queue, a
//! file through its pipeline, a workflow started and signalled), then every
//! service's `/metrics` is read and each name the chart uses must be there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_e2e::Stack;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/helm/sluice/files");

/// The `sluice_*` names in the dashboards' queries and the alert rules.
fn chart_metric_names() -> BTreeSet<String> {
    let mut text = std::fs::read_to_string(format!("{CHART}/alerts.yaml")).unwrap();
    for entry in std::fs::read_dir(format!("{CHART}/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in doc["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                text.push('\n');
                text.push_str(target["expr"].as_str().unwrap());
            }
        }
    }
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("sluice_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        // `sluice:dashboard:…` record names and labels are not metrics.
        if start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// Sample names on a `/metrics` page (`name{labels} value` or `name value`).
fn exported(page: &str, into: &mut BTreeSet<String>) {
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        into.insert(line[..end].to_string());
    }
}

async fn until<F, Fut>(what: &str, stack: &Stack, mut f: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = std::time::Instant::now() + sluice_testkit::patience(Duration::from_secs(120));
    while std::time::Instant::now() < deadline {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what} did not happen\n{}", stack.logs());
}

/// Where a service listens, from its environment.
fn listen_of(stack: &Stack, service: &str, var: &str) -> String {
    stack
        .env_of(service)
        .into_iter()
        .find(|(k, _)| k == var)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{service} has no {var}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_chart_names_is_exported() {
    let names = chart_metric_names();
    assert!(names.len() > 20, "{names:?}");

    let mail = sluice_testkit::Mailbox::start().await.unwrap();
    let (smtp, ca) = (mail.starttls_url(), mail.ca_file());
    let stack = Stack::start_with_files(
        "metricnames",
        &[
            ("SLUICE_SMTP_URL", smtp.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
        ],
        true,
    )
    .await
    .unwrap();

    // An event, processed.
    let (code, _, body) = stack
        .post(
            "/v1/events",
            &json!({"source": "sluice.test", "detail-type": "Ping", "detail": {"n": 1}}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    until("the event processed", &stack, || async {
        (stack.event_status(&id).await.as_deref() == Some("processed")).then_some(json!(true))
    })
    .await;

    // A rule delivering to a queue.
    let (code, body) = stack.put("/v1/queues/names", &json!({})).await;
    assert_eq!(code, 201, "{body}");
    let rule = json!({"event_pattern": {"source": ["sluice.test"], "detail-type": ["Routed"]},
                      "targets": [{"type": "queue", "id": "q", "queue": "names"}]});
    let (code, body) = stack.put("/v1/buses/default/rules/names", &rule).await;
    assert_eq!(code, 201, "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, _, body) = stack
        .post(
            "/v1/events",
            &json!({"source": "sluice.test", "detail-type": "Routed", "detail": {}}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    until("the rule's delivery", &stack, || async {
        let (_, _, got) = stack
            .post("/v1/queues/names/receive", &json!({"wait_time_seconds": 1}))
            .await;
        (!got["messages"].as_array()?.is_empty()).then_some(got)
    })
    .await;

    // A topic fanning out to a queue.
    let (code, body) = stack.put("/v1/topics/names", &json!({})).await;
    assert!(code == 201 || code == 200, "{body}");
    let (code, body) = stack.put("/v1/queues/names-sub", &json!({})).await;
    assert_eq!(code, 201, "{body}");
    let (code, _, body) = stack
        .post(
            "/v1/topics/names/subscriptions",
            &json!({"protocol": "queue", "endpoint": "names-sub"}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, _, body) = stack
        .post("/v1/topics/names/messages", &json!({"message": "hello"}))
        .await;
    assert_eq!(code, 202, "{body}");
    until("the topic's delivery", &stack, || async {
        let (_, _, got) = stack
            .post(
                "/v1/queues/names-sub/receive",
                &json!({"wait_time_seconds": 1}),
            )
            .await;
        (!got["messages"].as_array()?.is_empty()).then_some(got)
    })
    .await;
    // An email subscription: its confirmation is a delivery (attempted, timed).
    let (code, _, body) = stack
        .post(
            "/v1/topics/names/subscriptions",
            &json!({"protocol": "email", "endpoint": "names@example.com"}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    mail.wait_for("names@example.com", 1, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));

    // A file through its pipeline.
    let (code, _, created) = stack
        .post(
            "/v1/files",
            &json!({"name": "n.csv", "content_type": "text/csv"}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let put = reqwest::Client::new()
        .put(created["upload_url"].as_str().unwrap())
        .body("a,b\n1,2\n")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let file_id = created["file_id"].as_str().unwrap().to_string();
    until("the file processed", &stack, || async {
        let (_, f) = stack.get(&format!("/v1/files/{file_id}")).await;
        (f["status"] == "processed").then_some(f)
    })
    .await;

    // A workflow started and signalled.
    let (code, _, task) = stack
        .post(
            "/v1/tasks",
            &json!({"title": "names", "priority": "low", "userId": "o@example.com"}),
        )
        .await;
    assert_eq!(code, 201, "{task}");
    let (code, _, started) = stack
        .post(
            "/v1/workflows/approval",
            &json!({"taskId": task["taskId"], "title": "names"}),
        )
        .await;
    assert_eq!(code, 202, "{started}");
    let wid = started["workflow_id"].as_str().unwrap();
    let (code, _, body) = stack
        .post(
            &format!("/v1/workflows/{wid}/signals/decision"),
            &json!({"approve": true, "by": "test"}),
        )
        .await;
    assert!(code < 300, "{code} {body}");

    // Gauges are read every 5 s: give them one round.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut have = BTreeSet::new();
    let pages = [
        format!("{}/metrics", stack.url),
        format!("http://127.0.0.1:{}/metrics", stack.processor_port),
        format!("http://127.0.0.1:{}/metrics", stack.transformer_port),
        format!(
            "http://{}/metrics",
            listen_of(&stack, "notifier", "SLUICE_NOTIFIER_LISTEN")
        ),
        format!("http://127.0.0.1:{}/metrics", stack.orchestrator_port),
        format!("http://127.0.0.1:{}/metrics", stack.file_ingest_port),
    ];
    for url in &pages {
        let page = stack
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("sluice_"), "{url}: {page}");
        exported(&page, &mut have);
    }
    let missing: Vec<_> = names.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the chart names metrics no service exports: {missing:?}\nexported: {have:?}"
    );
}
