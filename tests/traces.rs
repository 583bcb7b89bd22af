//! One trace end to end, read back from a real Jaeger. A high-priority
//! task goes from `POST /v1/tasks` through the bus, its rule, the workflow
//! target, the orchestrator's gRPC API, the Temporal workflow and its
//! activities, the notifier and the SMTP server; an upload from the
//! request for its URL through file-ingest, the pipeline and the owner's
//! email; an order through the processor, the saga and the payment
//! provider. Every hop is a span of the trace the gateway's
//! `traceresponse` names, each with its parent present, one root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_e2e::Stack;
use sluice_testkit::{Jaeger, Mailbox};

const APPROVER: &str = "approver@example.com";

/// One span as the checks need it.
#[derive(Debug, Clone)]
struct Span {
    id: String,
    trace: String,
    parent: Option<String>,
    service: String,
    operation: String,
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} / {} (parent {})",
            self.id,
            self.service,
            self.operation,
            self.parent.as_deref().unwrap_or("-")
        )
    }
}

fn spans_of(trace: &Value) -> Vec<Span> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Span {
            id: s["spanID"].as_str().unwrap().to_string(),
            trace: s["traceID"].as_str().unwrap().to_string(),
            parent: s["references"].as_array().and_then(|refs| {
                refs.iter()
                    .find(|r| r["refType"] == "CHILD_OF")
                    .map(|r| r["spanID"].as_str().unwrap().to_string())
            }),
            service: processes[s["processID"].as_str().unwrap()]["serviceName"]
                .as_str()
                .unwrap()
                .to_string(),
            operation: s["operationName"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// The trace id a `traceresponse` header names.
fn trace_of(headers: &reqwest::header::HeaderMap) -> String {
    let value = headers
        .get("traceresponse")
        .expect("a traceresponse header")
        .to_str()
        .unwrap();
    value.split('-').nth(1).unwrap().to_string()
}

/// Reads `trace_id` from Jaeger until every `(service, operation prefix)`
/// of `wanted` is in it (spans arrive in batches, from six processes).
async fn trace_with(
    jaeger: &Jaeger,
    trace_id: &str,
    wanted: &[(&str, &str)],
    stack: &Stack,
) -> Vec<Span> {
    let deadline = Instant::now() + sluice_testkit::patience(Duration::from_secs(60));
    loop {
        let spans = jaeger
            .trace(trace_id)
            .await
            .unwrap()
            .map(|t| spans_of(&t))
            .unwrap_or_default();
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(service, op)| {
                !spans
                    .iter()
                    .any(|s| s.service == *service && s.operation.starts_with(op))
            })
            .collect();
        if missing.is_empty() {
            return spans;
        }
        if Instant::now() > deadline {
            let list: Vec<String> = spans.iter().map(ToString::to_string).collect();
            panic!(
                "trace {trace_id} lacks {missing:?}; it has:\n{}\n{}",
                list.join("\n"),
                stack.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One root (the gateway's request span), every other span's parent in
/// the trace, every span of the one trace.
fn connected(spans: &[Span], trace_id: &str) {
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    let listing = || {
        spans
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    for s in spans {
        assert_eq!(s.trace, trace_id, "{s}");
    }
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent.is_none()).collect();
    assert_eq!(roots.len(), 1, "roots {roots:?} in\n{}", listing());
    assert_eq!(roots[0].service, "sluice-gateway", "{}", listing());
    let orphans: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent.as_deref().is_some_and(|p| !ids.contains(p)))
        .collect();
    assert!(orphans.is_empty(), "orphans {orphans:?} in\n{}", listing());
}

/// The chain from a span up to the root, as `service / operation`.
fn path_to_root(spans: &[Span], from: &Span) -> Vec<String> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut out = vec![format!("{} / {}", from.service, from.operation)];
    let mut at = from;
    while let Some(p) = at.parent.as_deref().and_then(|p| by_id.get(p)) {
        out.push(format!("{} / {}", p.service, p.operation));
        at = p;
    }
    out
}

#[tokio::test]
async fn a_high_priority_task_is_one_trace_from_the_request_to_the_email() {
    let dir = tempfile::tempdir().unwrap();
    let jaeger = Jaeger::start(dir.path()).await.unwrap();
    let otlp = jaeger.env().remove(0).1;
    let mail = Mailbox::start().await.unwrap();
    let (smtp, ca) = (mail.starttls_url(), mail.ca_file());
    let stack = Stack::start_with_workflows(
        "traces",
        &[
            ("SLUICE_SMTP_URL", smtp.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
            ("SLUICE_APPROVAL_APPROVERS", APPROVER),
            ("SLUICE_OTLP_ENDPOINT", otlp.as_str()),
        ],
        false,
    )
    .await
    .unwrap();
    subscribe_email(&stack, &mail, "task-approvals", APPROVER).await;
    let (code, rule) = stack
        .put(
            "/v1/buses/default/rules/task-approval",
            &json!({"event_pattern": {"source": ["sluice.tasks"], "detail-type": ["TaskCreated"],
                                      "detail": {"priority": ["high"]}},
                    "targets": [{"type": "workflow", "id": "approval", "workflow_type": "approval"}]}),
        )
        .await;
    assert!(code == 200 || code == 201, "{rule}");

    let (code, headers, task) = stack
        .post(
            "/v1/tasks",
            &json!({"title": "Trace me", "priority": "high", "userId": "owner@example.com"}),
        )
        .await;
    assert_eq!(code, 201, "{task}");
    let trace_id = trace_of(&headers);
    let emails = mail
        .wait_for(APPROVER, 2, Duration::from_secs(60))
        .await
        .unwrap();
    // Decided, the workflow ends, and so does its span (a span is sent
    // when it ends).
    let approve = emails[1]["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.contains("/decision?approve=true&token="))
        .expect("an approve link")
        .to_string();
    // Every log line about the task or its workflow, in every service,
    // names the trace (read before the decision, another request's trace).
    let task_id = task["taskId"].as_str().unwrap();
    let workflow_id = approve
        .split("/v1/workflows/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap();
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(stack.servers.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            lines.extend(
                text.lines()
                    .filter(|l| l.contains(task_id) || l.contains(workflow_id))
                    .map(str::to_string),
            );
        }
    }
    assert!(lines.len() >= 2, "{lines:#?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let id = v["trace_id"].as_str().or(v["span"]["trace_id"].as_str());
        assert_eq!(id, Some(trace_id.as_str()), "{line}");
    }
    let r = reqwest::Client::new().post(&approve).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let spans = trace_with(
        &jaeger,
        &trace_id,
        &[
            ("sluice-gateway", "POST /v1/tasks"),
            ("sluice-gateway", "publish bus"),
            ("sluice-transformer", "sluice.transformer.route"),
            ("sluice-transformer", "publish deliver"),
            ("sluice-transformer", "sluice.transformer.deliver workflow"),
            ("sluice-orchestrator", "/sluice.v1.Workflows/StartWorkflow"),
            ("sluice-orchestrator", "StartWorkflow:approval"),
            ("sluice-orchestrator", "RunWorkflow:approval"),
            ("sluice-orchestrator", "StartActivity:approval.request"),
            ("sluice-orchestrator", "RunActivity:approval.request"),
            ("sluice-orchestrator", "publish notify"),
            ("sluice-notifier", "sluice.notifier.fanout"),
            ("sluice-notifier", "publish deliver"),
            ("sluice-notifier", "sluice.notifier.deliver email"),
            ("sluice-notifier", "smtp send"),
            ("sluice-orchestrator", "RunActivity:approval.settle"),
        ],
        &stack,
    )
    .await;
    connected(&spans, &trace_id);
    // The email's span descends, hop by hop, from the request.
    let smtp = spans.iter().find(|s| s.operation == "smtp send").unwrap();
    let path = path_to_root(&spans, smtp);
    let hops = [
        "sluice-notifier / smtp send",
        "sluice-notifier / sluice.notifier.deliver email",
        "sluice-notifier / publish deliver",
        "sluice-notifier / sluice.notifier.fanout",
        "sluice-orchestrator / publish notify",
        "sluice-orchestrator / activity",
        "sluice-orchestrator / RunActivity:approval.request",
        "sluice-orchestrator / StartActivity:approval.request",
        "sluice-orchestrator / RunWorkflow:approval",
        "sluice-orchestrator / StartWorkflow:approval",
        "sluice-orchestrator / /sluice.v1.Workflows/StartWorkflow",
        "sluice-transformer / sluice.transformer.deliver workflow",
        "sluice-transformer / publish deliver",
        "sluice-transformer / sluice.transformer.route",
        "sluice-gateway / publish bus",
        "sluice-gateway / POST /v1/tasks",
    ];
    let mut at = 0;
    for hop in &path {
        if at < hops.len() && hop == hops[at] {
            at += 1;
        }
    }
    assert_eq!(
        at,
        hops.len(),
        "the email's ancestry {path:#?} lacks {:?}",
        hops.get(at)
    );
}

/// Subscribes `to` to `topic` by email and confirms it.
async fn subscribe_email(stack: &Stack, mail: &Mailbox, topic: &str, to: &str) {
    let (code, _) = stack.put(&format!("/v1/topics/{topic}"), &json!({})).await;
    assert!(code == 200 || code == 201, "{code}");
    let (code, _, sub) = stack
        .post(
            &format!("/v1/topics/{topic}/subscriptions"),
            &json!({"protocol": "email", "endpoint": to}),
        )
        .await;
    assert_eq!(code, 201, "{sub}");
    let confirm = mail.wait_for(to, 1, Duration::from_secs(30)).await.unwrap();
    let link = confirm[0]["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .unwrap()
        .to_string();
    assert_eq!(reqwest::get(&link).await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_upload_is_one_trace_from_the_request_for_its_url_to_the_owners_email() {
    const OWNER: &str = "owner-of-files@example.com";
    let dir = tempfile::tempdir().unwrap();
    let jaeger = Jaeger::start(dir.path()).await.unwrap();
    let otlp = jaeger.env().remove(0).1;
    let mail = Mailbox::start().await.unwrap();
    let (smtp, ca) = (mail.starttls_url(), mail.ca_file());
    let stack = Stack::start_with_files(
        "tracefiles",
        &[
            ("SLUICE_SMTP_URL", smtp.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
            ("SLUICE_OTLP_ENDPOINT", otlp.as_str()),
        ],
        false,
    )
    .await
    .unwrap();
    subscribe_email(&stack, &mail, "file-events", OWNER).await;

    // The object store's notification carries no trace; the upload
    // continues the trace of the request that registered the file.
    let (code, headers, created) = stack
        .post(
            "/v1/files",
            &json!({"name": "people.csv", "content_type": "text/csv"}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let trace_id = trace_of(&headers);
    let put = reqwest::Client::new()
        .put(created["upload_url"].as_str().unwrap())
        .body("id,name\n1,Ada\n2,Grace\n")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    mail.wait_for(OWNER, 2, Duration::from_secs(90))
        .await
        .unwrap();

    let spans = trace_with(
        &jaeger,
        &trace_id,
        &[
            ("sluice-gateway", "POST /v1/files"),
            ("sluice-file-ingest", "sluice.file_ingest.object"),
            ("sluice-orchestrator", "/sluice.v1.Workflows/StartWorkflow"),
            ("sluice-orchestrator", "StartWorkflow:file-pipeline"),
            ("sluice-orchestrator", "RunWorkflow:file-pipeline"),
            // file-ingest's worker runs the pipeline's activities.
            ("sluice-file-ingest", "RunActivity:file.validate"),
            ("sluice-file-ingest", "RunActivity:file.transform"),
            ("sluice-file-ingest", "RunActivity:file.store"),
            ("sluice-file-ingest", "RunActivity:file.notify"),
            ("sluice-file-ingest", "publish notify"),
            ("sluice-notifier", "sluice.notifier.fanout"),
            ("sluice-notifier", "sluice.notifier.deliver email"),
            ("sluice-notifier", "smtp send"),
        ],
        &stack,
    )
    .await;
    connected(&spans, &trace_id);
}

#[tokio::test]
async fn an_order_is_one_trace_from_the_request_to_the_payment_provider_and_back() {
    // The payment provider keeps the traceparent each charge came with.
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let app = axum::Router::new()
        .route(
            "/charges",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<
                    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
                >,
                 headers: axum::http::HeaderMap| async move {
                    let tp = headers
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().unwrap().push(tp);
                    (
                        axum::http::StatusCode::CREATED,
                        axum::Json(json!({"charge_id": "ch_1"})),
                    )
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let payments = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let jaeger = Jaeger::start(dir.path()).await.unwrap();
    let otlp = jaeger.env().remove(0).1;
    let stack = Stack::start_with_workflows(
        "traceorder",
        &[
            ("SLUICE_ORDER_FLOW", "saga"),
            ("SLUICE_PAYMENT_URL", payments.as_str()),
            ("SLUICE_OTLP_ENDPOINT", otlp.as_str()),
        ],
        true,
    )
    .await
    .unwrap();
    let (code, _) = stack
        .put("/v1/inventory/BOOK-1", &json!({"available": 10}))
        .await;
    assert_eq!(code, 200);
    let (code, headers, body) = stack
        .post(
            "/v1/orders",
            &json!({"customer_id": "alice", "currency": "EUR",
                    "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price": "5.00"}]}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let trace_id = trace_of(&headers);

    let spans = trace_with(
        &jaeger,
        &trace_id,
        &[
            ("sluice-gateway", "POST /v1/orders"),
            ("sluice-gateway", "publish ingest"),
            ("sluice-processor", "sluice.processor.message"),
            ("sluice-orchestrator", "/sluice.v1.Workflows/StartWorkflow"),
            ("sluice-orchestrator", "StartWorkflow:order-saga"),
            ("sluice-orchestrator", "RunWorkflow:order-saga"),
            ("sluice-orchestrator", "RunActivity:order.reserve"),
            ("sluice-orchestrator", "RunActivity:order.fraud_check"),
            ("sluice-orchestrator", "RunActivity:order.charge"),
            ("sluice-orchestrator", "POST /charges"),
            ("sluice-orchestrator", "RunActivity:order.settle"),
        ],
        &stack,
    )
    .await;
    connected(&spans, &trace_id);
    // The provider was called within the trace, by the charge's span.
    let charge = spans
        .iter()
        .find(|s| s.operation == "POST /charges")
        .unwrap();
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![format!("00-{trace_id}-{}-01", charge.id)],
        "the charge request's traceparent"
    );
}
