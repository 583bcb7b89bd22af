//! API Gateway features of the gateway: CORS and access logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_e2e::{assert_eventually, Stack, ADMIN_KEY};

#[tokio::test]
async fn a_browser_preflight_is_answered_without_credentials_and_responses_carry_cors_headers() {
    let stack = Stack::start_with(
        "cors",
        &[
            ("SLUICE_GATEWAY_CORS_ORIGINS", "https://app.example.com"),
            ("SLUICE_GATEWAY_CORS_MAX_AGE", "5m"),
            ("SLUICE_GATEWAY_CORS_CREDENTIALS", "true"),
        ],
        false,
    )
    .await
    .unwrap();
    let preflight = stack
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/v1/events", stack.url))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, x-api-key")
        .send()
        .await
        .unwrap();
    assert!(
        preflight.status().is_success(),
        "preflight got {}",
        preflight.status()
    );
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-max-age"], "300");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let methods = h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("x-api-key") && allowed.contains("content-type"),
        "{allowed}"
    );

    // Another origin gets no allowance.
    let other = stack
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/v1/events", stack.url))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // Real responses, errors included, carry the allowance and expose the request id.
    let r = stack
        .http
        .get(format!("{}/v1/events/x", stack.url))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(exposed.contains("traceresponse"), "{exposed}");
}

#[tokio::test]
async fn every_request_writes_one_access_log_line() {
    let stack = Stack::start_with("access", &[], false).await.unwrap();
    let r = stack
        .http
        .get(format!("{}/v1/buses", stack.url))
        .header("x-api-key", ADMIN_KEY)
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The response names the gateway's span of the caller's trace.
    let tr = r.headers()["traceresponse"].to_str().unwrap().to_string();
    let parts: Vec<&str> = tr.split('-').collect();
    assert_eq!(parts.len(), 4, "{tr}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"),
        "{tr}"
    );
    assert!(
        parts[2].len() == 16 && parts[2] != "00f067aa0ba902b7" && parts[2] != "0000000000000000",
        "the gateway's own span id: {tr}"
    );
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let log = stack.servers.dir.path().join("gateway.log");
    let line = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"sluice::access\"") && l.contains(&request_id))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eventually!(line().len() == 1, "no access log line for {request_id}");
    let entry: serde_json::Value = serde_json::from_str(&line()[0]).unwrap();
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["route"], "/v1/buses");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["principal"], "admin");
    assert_eq!(entry["request_id"], request_id.as_str());
    assert_eq!(entry["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(entry["latency_ms"].as_f64().unwrap() > 0.0);

    // Refused requests are logged too, with no principal.
    let r = stack
        .http
        .get(format!("{}/v1/buses", stack.url))
        .send()
        .await
        .unwrap();
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let refused = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("\"sluice::access\"") && l.contains(&request_id))
            .map(str::to_string)
    };
    assert_eventually!(refused().is_some(), "no line for the refused request");
    let entry: serde_json::Value = serde_json::from_str(&refused().unwrap()).unwrap();
    assert_eq!(entry["status"], 401);
    assert_eq!(entry["principal"], "-");
    // A request without a trace starts one; the response and the log name it.
    let tr = r.headers()["traceresponse"].to_str().unwrap();
    let trace_id = tr.split('-').nth(1).unwrap();
    assert!(
        trace_id.len() == 32 && trace_id != "0".repeat(32),
        "a new trace: {tr}"
    );
    assert_eq!(entry["trace_id"], trace_id, "{entry}");
}
