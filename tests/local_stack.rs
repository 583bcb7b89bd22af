//! `make up` (scripts/up.sh) as a user runs it: everything starts and
//! serves, and running it again brings back whatever is not serving,
//! whatever state its pid is in (exited, SIGKILLed and not yet reaped,
//! alive but stopped); `make down` stops everything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use sluice_testkit::{free_port, repo_root};

struct LocalStack {
    state: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl LocalStack {
    fn new() -> Self {
        let state = tempfile::Builder::new()
            .prefix("sluice-up-")
            .tempdir()
            .unwrap();
        let mut env: Vec<(String, String)> = [
            "SLUICE_NATS_PORT",
            "SLUICE_NATS_MONITOR_PORT",
            "SLUICE_DYNAMO_PORT",
            "SLUICE_GATEWAY_PORT",
            "SLUICE_PROCESSOR_PORT",
            "SLUICE_TRANSFORMER_PORT",
            "SLUICE_TRANSFORMER_GRPC_PORT",
            "SLUICE_NOTIFIER_PORT",
            "SLUICE_NOTIFIER_GRPC_PORT",
            "SLUICE_SMTP_PORT",
            "SLUICE_SMTPS_PORT",
            "SLUICE_MAILBOX_PORT",
            "SLUICE_ORCHESTRATOR_PORT",
            "SLUICE_ORCHESTRATOR_GRPC_PORT",
            "SLUICE_TEMPORAL_PORT",
            "SLUICE_TEMPORAL_UI_PORT",
            "SLUICE_TEMPORAL_HTTP_PORT",
            "SLUICE_TEMPORAL_METRICS_PORT",
            "SLUICE_FILE_INGEST_PORT",
            "SLUICE_MINIO_PORT",
            "SLUICE_MINIO_CONSOLE_PORT",
            "SLUICE_KAFKA_PORT",
            "SLUICE_KAFKA_CONTROLLER_PORT",
            "SLUICE_JAEGER_PORT",
            "SLUICE_JAEGER_GRPC_PORT",
            "SLUICE_OTLP_GRPC_PORT",
            "SLUICE_OTLP_HTTP_PORT",
            "SLUICE_PROMETHEUS_PORT",
        ]
        .iter()
        .map(|k| (k.to_string(), free_port().to_string()))
        .collect();
        env.push((
            "SLUICE_STATE_DIR".into(),
            state.path().display().to_string(),
        ));
        env.push(("SLUICE_PROFILE".into(), "debug".into()));
        env.push(("SLUICE_NATS_SYNC".into(), "default".into()));
        // JetStream's store is three quarters of the free disk; the shared
        // streams need not reserve 1 GiB each for this test.
        env.push(("SLUICE_QUEUE_MAX_BYTES".into(), "64MiB".into()));
        Self { state, env }
    }

    fn port(&self, name: &str) -> String {
        self.env.iter().find(|(k, _)| k == name).unwrap().1.clone()
    }

    fn script(&self, name: &str) -> (bool, String) {
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("scripts").join(name))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run script");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.state.path().join("run").join(format!("{name}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn dir(&self) -> PathBuf {
        self.state.path().to_path_buf()
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.script("down.sh");
    }
}

fn signal(pid: i32, sig: &str) {
    std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
}

async fn serving(port: &str) -> bool {
    reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn make_up_brings_back_whatever_is_not_serving() {
    let stack = LocalStack::new();
    let (ok, out) = stack.script("up.sh");
    assert!(ok, "first make up failed:\n{out}");
    assert!(out.contains("sluice is up"), "{out}");
    let env = std::fs::read_to_string(stack.dir().join("dev.env")).unwrap();
    assert!(
        env.contains("SLUICE_GATEWAY_URL=") && env.contains("SLUICE_API_KEY="),
        "{env}"
    );
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} not in dev.env: {env}"))
            .to_string()
    };
    assert!(
        out.contains(&var("SLUICE_SMTP_API_URL")),
        "the mailbox is printed: {out}"
    );
    // Kafka is up for kafka targets, at the port printed.
    let kafka = stack.port("SLUICE_KAFKA_PORT");
    assert!(
        tokio::net::TcpStream::connect(format!("127.0.0.1:{kafka}"))
            .await
            .is_ok(),
        "kafka listens on {kafka}"
    );
    assert!(
        out.contains(&format!("127.0.0.1:{kafka}")),
        "kafka is printed: {out}"
    );
    // With the README example's topic.
    let topics = rskafka::client::ClientBuilder::new(vec![format!("127.0.0.1:{kafka}")])
        .build()
        .await
        .unwrap()
        .list_topics()
        .await
        .unwrap();
    assert!(
        topics
            .iter()
            .any(|t| t.name == "carts" && t.partitions.len() == 3),
        "{topics:?}"
    );
    // Email works out of the box: a subscription's confirmation email
    // reaches the mailbox, whose API the printed URL serves.
    let http = reqwest::Client::new();
    let gw = var("SLUICE_GATEWAY_URL");
    let key = var("SLUICE_API_KEY");
    let put = http
        .put(format!("{gw}/v1/topics/hello"))
        .header("x-api-key", &key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let sub = http
        .post(format!("{gw}/v1/topics/hello/subscriptions"))
        .header("x-api-key", &key)
        .json(&serde_json::json!({"protocol": "email", "endpoint": "me@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status(), 201);
    // Its trace, named by the response, is in the Jaeger that `make up`
    // printed and wrote to dev.env.
    let jaeger = var("SLUICE_JAEGER_URL");
    assert!(out.contains(&jaeger), "Jaeger is printed: {out}");
    let trace = sub.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .to_string();
    let mut services = Vec::new();
    for _ in 0..300 {
        let r = http
            .get(format!("{jaeger}/api/traces/{trace}"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let body: serde_json::Value = r.json().await.unwrap();
            services = body["data"][0]["processes"]
                .as_object()
                .map(|p| {
                    p.values()
                        .filter_map(|v| v["serviceName"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if services.iter().any(|s| s == "sluice-notifier") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        services.iter().any(|s| s == "sluice-gateway")
            && services.iter().any(|s| s == "sluice-notifier"),
        "trace {trace} in Jaeger has the gateway and the notifier: {services:?}"
    );
    // Prometheus scrapes all six services and has the chart's alert rules.
    let prometheus = var("SLUICE_PROMETHEUS_URL");
    assert!(out.contains(&prometheus), "Prometheus is printed: {out}");
    let mut up = serde_json::Value::Null;
    for _ in 0..300 {
        up = http
            .get(format!(
                "{prometheus}/api/v1/query?query=sum%20by%20(service)%20(up)"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let serving = up["data"]["result"]
            .as_array()
            .map(|r| r.iter().filter(|s| s["value"][1] == "1").count())
            .unwrap_or(0);
        if serving == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let services: Vec<&str> = up["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["value"][1] == "1")
        .map(|s| s["metric"]["service"].as_str().unwrap())
        .collect();
    assert_eq!(services.len(), 6, "every service scraped: {up}");
    let rules: serde_json::Value = http
        .get(format!("{prometheus}/api/v1/rules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alerts: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        alerts.contains(&"SluiceServiceErrors") && alerts.len() >= 8,
        "the chart's alert rules: {alerts:?}"
    );
    // The dashboards, drawn from that Prometheus.
    let drawn = std::process::Command::new(repo_root().join(".deps/plots-venv/bin/python"))
        .arg(repo_root().join("scripts/render-dashboards.py"))
        .args([
            "--prometheus",
            &prometheus,
            "--minutes",
            "2",
            "--rate-interval",
            "20s",
        ])
        .arg("--out")
        .arg(stack.dir().join("dashboards"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&drawn.stdout).to_string()
        + &String::from_utf8_lossy(&drawn.stderr);
    assert!(drawn.status.success(), "{report}");
    let last = report
        .lines()
        .rfind(|l| l.starts_with("dashboards: "))
        .unwrap_or_default();
    assert!(last.starts_with("dashboards: rendered=5 "), "{report}");
    for name in [
        "sluice-api",
        "sluice-services",
        "sluice-queues",
        "sluice-store",
        "sluice-workflows",
    ] {
        let png =
            std::fs::read(stack.dir().join("dashboards").join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}.png is a PNG");
    }
    let mailbox = var("SLUICE_SMTP_API_URL");
    let mut received = serde_json::Value::Null;
    for _ in 0..300 {
        received = http
            .get(format!("{mailbox}?to=me@example.com"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if received.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        received[0]["subject"], "Confirm your subscription to hello",
        "{received}"
    );
    assert!(received[0]["text"]
        .as_str()
        .unwrap()
        .contains(&format!("{gw}/v1/topics/hello/subscriptions/")));
    // The task app's default routing: a completed task of the seeded owner
    // is emailed to them.
    let created: serde_json::Value = http
        .post(format!("{gw}/v1/tasks"))
        .header("x-api-key", &key)
        .json(&serde_json::json!({"title": "Ship it", "userId": "owner@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = created["taskId"].as_str().unwrap();
    let done = http
        .put(format!("{gw}/v1/tasks/{task}"))
        .header("x-api-key", &key)
        .json(&serde_json::json!({"status": "completed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let mut told = serde_json::Value::Null;
    for _ in 0..300 {
        let all: serde_json::Value = http
            .get(format!("{mailbox}?to=owner@example.com"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(m) = all.as_array().and_then(|a| {
            a.iter()
                .find(|m| m["text"].as_str().unwrap_or("").contains(task))
        }) {
            told = m.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        told["text"]
            .as_str()
            .unwrap_or("")
            .contains("Your task Ship it is completed."),
        "the owner was not emailed: {told}"
    );
    for port in [
        "SLUICE_GATEWAY_PORT",
        "SLUICE_PROCESSOR_PORT",
        "SLUICE_TRANSFORMER_PORT",
        "SLUICE_NOTIFIER_PORT",
        "SLUICE_ORCHESTRATOR_PORT",
        "SLUICE_FILE_INGEST_PORT",
        "SLUICE_MAILBOX_PORT",
    ] {
        assert!(serving(&stack.port(port)).await, "{port} not serving");
    }
    // Files: an upload to the URL POST /v1/files answers is processed by
    // itself (MinIO's notification, file-ingest, the pipeline workflow).
    let created: serde_json::Value = http
        .post(format!("{gw}/v1/files"))
        .header("x-api-key", &key)
        .json(&serde_json::json!({"name": "hello.csv", "content_type": "text/csv"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = http
        .put(created["upload_url"].as_str().unwrap())
        .body("greeting,n\nhello,1\n")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{put:?}");
    let file = created["file_id"].as_str().unwrap();
    let mut seen = serde_json::Value::Null;
    for _ in 0..600 {
        seen = http
            .get(format!("{gw}/v1/files/{file}"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if seen["status"] == "processed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen["status"], "processed", "{seen}");
    assert_eq!(seen["rows"], 1, "{seen}");

    // Again, with everything up: nothing is restarted.
    let (ok, out) = stack.script("up.sh");
    assert!(ok, "{out}");
    assert!(!out.contains("started"), "{out}");

    // SIGKILLed (a zombie until someone reaps it) and stopped (alive, not serving).
    let gateway = stack.pid("gateway");
    signal(gateway, "-KILL");
    let transformer = stack.pid("transformer");
    signal(transformer, "-STOP");
    let (ok, out) = stack.script("up.sh");
    assert!(ok, "make up after a kill failed:\n{out}");
    assert!(out.contains("started gateway"), "{out}");
    assert!(
        out.contains("transformer") && out.contains("not serving"),
        "{out}"
    );
    assert_ne!(stack.pid("gateway"), gateway);
    assert_ne!(stack.pid("transformer"), transformer);
    for port in ["SLUICE_GATEWAY_PORT", "SLUICE_TRANSFORMER_PORT"] {
        assert!(serving(&stack.port(port)).await, "{port} not serving again");
    }
    assert!(
        !alive(transformer) || {
            let stat =
                std::fs::read_to_string(format!("/proc/{transformer}/stat")).unwrap_or_default();
            stat.contains(") Z")
        },
        "the stopped transformer was not replaced"
    );

    let processor = stack.pid("processor");
    let (ok, out) = stack.script("down.sh");
    assert!(ok, "{out}");
    assert!(out.contains("stopped processor"), "{out}");
    assert!(!serving(&stack.port("SLUICE_GATEWAY_PORT")).await);
    let gone = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        !alive(processor)
            || std::fs::read_to_string(format!("/proc/{processor}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    });
    assert!(gone, "processor still running after make down");
}
