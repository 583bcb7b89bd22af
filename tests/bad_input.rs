//! Careless and hostile clients: every mistake gets the right 4xx as
//! problem+json, and nothing is written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use sluice_e2e::{Stack, JWT_SECRET, READER_KEY};

fn jwt(secret: &str, ttl: i64, scope: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "someone", "exp": now + ttl, "scope": scope}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// POSTs headers announcing `length` bytes and only the first KiB of them
/// over a raw connection, and returns the status the gateway answers.
async fn oversized_post(url: &str, path: &str, length: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n",
        sluice_e2e::ADMIN_KEY
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&vec![b' '; 1024]).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = conn.read(&mut buf).await.unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    if status >= 400 {
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "errors are problem+json"
        );
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_requests_get_the_right_4xx_and_write_nothing() {
    let stack = Stack::start_with("bad", &[], false).await.unwrap();
    let post = |body: Vec<u8>| {
        stack
            .req(reqwest::Method::POST, "/v1/events")
            .header("content-type", "application/json")
            .body(body)
    };
    let ok_event = json!({"source": "s", "detail-type": "t", "detail": {}});

    // (what, request, expected status, expected pointer)
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, Option<&str>)> = vec![
        ("malformed JSON", post(b"{\"source\": ".to_vec()), 400, None),
        ("empty body", post(Vec::new()), 400, None),
        ("invalid UTF-8", post(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']), 400, None),
        ("deep nesting", post(format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes()), 400, None),
        ("deeply nested detail", post(format!(r#"{{"source":"s","detail-type":"t","detail":{{"a":{}1{}}}}}"#, "[".repeat(5000), "]".repeat(5000)).into_bytes()), 400, None),
        ("wrong type", post(br#"{"source": 5, "detail-type": "t", "detail": {}}"#.to_vec()), 422, Some("/source")),
        ("unknown field", post(br#"{"source": "s", "detail-type": "t", "detail": {}, "extra": 1}"#.to_vec()), 422, Some("/extra")),
        ("missing field", post(br#"{"source": "s", "detail": {}}"#.to_vec()), 422, Some("")),
        ("detail not an object", post(br#"{"source": "s", "detail-type": "t", "detail": "x"}"#.to_vec()), 422, Some("/detail")),
        ("bad client id", post(br#"{"source": "s", "detail-type": "t", "detail": {}, "id": "a b"}"#.to_vec()), 422, Some("/id")),
        ("not an object", post(b"[1,2]".to_vec()), 422, Some("")),
        ("oversized event", post(format!(r#"{{"source":"s","detail-type":"t","detail":{{"x":"{}"}}}}"#, "a".repeat(300 << 10)).into_bytes()), 422, Some("")),
        ("batch over 100", post(serde_json::to_vec(&json!({"entries": vec![ok_event.clone(); 101]})).unwrap()), 422, Some("/entries")),
        ("empty batch", post(serde_json::to_vec(&json!({"entries": []})).unwrap()), 422, Some("/entries")),
        ("batch with one bad entry", post(serde_json::to_vec(&json!({"entries": [ok_event.clone(), {"source": "s"}]})).unwrap()), 422, Some("/entries/1")),
        ("wrong content type", stack.req(reqwest::Method::POST, "/v1/events").header("content-type", "text/plain").body(serde_json::to_vec(&ok_event).unwrap()), 415, None),
        ("no content type", stack.req(reqwest::Method::POST, "/v1/events").body(serde_json::to_vec(&ok_event).unwrap()), 415, None),
        ("missing credentials", stack.http.post(format!("{}/v1/events", stack.url)).json(&ok_event), 401, None),
        ("forged API key", stack.http.post(format!("{}/v1/events", stack.url)).header("x-api-key", "guess").json(&ok_event), 401, None),
        ("expired token", stack.http.post(format!("{}/v1/events", stack.url)).bearer_auth(jwt(JWT_SECRET, -3600, "events:write")).json(&ok_event), 401, None),
        ("forged token", stack.http.post(format!("{}/v1/events", stack.url)).bearer_auth(jwt("not-the-secret", 600, "events:write")).json(&ok_event), 401, None),
        ("garbage token", stack.http.post(format!("{}/v1/events", stack.url)).bearer_auth("abc.def.ghi").json(&ok_event), 401, None),
        ("missing scope", stack.http.post(format!("{}/v1/events", stack.url)).header("x-api-key", READER_KEY).json(&ok_event), 403, None),
        ("token without scope", stack.http.post(format!("{}/v1/orders", stack.url)).bearer_auth(jwt(JWT_SECRET, 600, "events:write")).json(&json!({})), 403, None),
        ("idempotency key too long", stack.req(reqwest::Method::POST, "/v1/events").header("idempotency-key", "k".repeat(300)).json(&ok_event), 422, Some("")),
        ("order: bad currency", stack.req(reqwest::Method::POST, "/v1/orders").json(&json!({"customer_id": "c", "currency": "XYZ", "items": [{"sku": "A", "quantity": 1, "unit_price": 1}]})), 422, Some("/currency")),
        ("order: negative price", stack.req(reqwest::Method::POST, "/v1/orders").json(&json!({"customer_id": "c", "currency": "EUR", "items": [{"sku": "A", "quantity": 1, "unit_price": -1}]})), 422, Some("/items/0/unit_price")),
        ("order: fractional quantity", stack.req(reqwest::Method::POST, "/v1/orders").json(&json!({"customer_id": "c", "currency": "EUR", "items": [{"sku": "A", "quantity": 1.5, "unit_price": 1}]})), 422, Some("/items/0/quantity")),
        ("order: too many decimals", stack.req(reqwest::Method::POST, "/v1/orders").json(&json!({"customer_id": "c", "currency": "EUR", "items": [{"sku": "A", "quantity": 1, "unit_price": "0.001"}]})), 422, Some("/items/0/unit_price")),
        ("stock: negative", stack.req(reqwest::Method::PUT, "/v1/inventory/A").json(&json!({"available": -1})), 422, Some("/available")),
        ("stock: bad sku", stack.req(reqwest::Method::PUT, "/v1/inventory/a%20b").json(&json!({"available": 1})), 422, Some("/sku")),
        ("stock: not admin", stack.http.put(format!("{}/v1/inventory/A", stack.url)).header("x-api-key", READER_KEY).json(&json!({"available": 1})), 403, None),
        ("redrive: bad limit", stack.req(reqwest::Method::POST, "/v1/dlq/redrive").json(&json!({"limit": 0})), 422, Some("/limit")),
        ("unknown event", stack.req(reqwest::Method::GET, "/v1/events/nope"), 404, None),
        ("unknown order", stack.req(reqwest::Method::GET, "/v1/orders/nope"), 404, None),
        ("unknown route", stack.req(reqwest::Method::GET, "/v2/nothing"), 404, None),
    ];
    let mut wrong = Vec::new();
    for (what, req, status, pointer) in cases {
        let (got, body) = send(req).await;
        let pointer_ok = pointer.is_none_or(|p| body["pointer"] == p);
        if got != status || body["status"] != status || !pointer_ok {
            wrong.push(format!(
                "{what}: expected {status} {pointer:?}, got {got} {body}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        stack.stream_messages("INGEST").await,
        0,
        "nothing was queued"
    );
    assert_eq!(
        stack.scan_count(&stack.store.tables().inventory).await,
        0,
        "nothing was stored"
    );
    assert_eq!(stack.scan_count(&stack.store.tables().orders).await, 0);

    // The gateway is still healthy after all that.
    let r = stack
        .http
        .get(format!("{}/healthz", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_principal_over_its_rate_gets_429_with_retry_after() {
    let stack = Stack::start_with(
        "throttle",
        &[("SLUICE_GATEWAY_RATE", "1"), ("SLUICE_GATEWAY_BURST", "3")],
        false,
    )
    .await
    .unwrap();
    let ok_event = json!({"source": "s", "detail-type": "t", "detail": {}});
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let r = stack
            .req(reqwest::Method::POST, "/v1/events")
            .json(&ok_event)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
        }
    }
    assert_eq!(&statuses[..3], &[202, 202, 202], "{statuses:?}");
    assert_eq!(statuses[4], 429, "{statuses:?}");
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&secs));
    // Another principal has its own bucket.
    let r = stack
        .http
        .get(format!("{}/v1/events/x", stack.url))
        .header("x-api-key", READER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(stack.stream_messages("INGEST").await, 3);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let stack = Stack::start_with("openapi", &[], false).await.unwrap();
    let doc: Value = stack
        .http
        .get(format!("{}/openapi.json", stack.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/events",
        "/v1/events/{id}",
        "/v1/orders",
        "/v1/orders/{id}",
        "/v1/inventory/{sku}",
        "/v1/dlq",
        "/v1/dlq/redrive",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    let metrics = stack
        .http
        .get(format!("{}/metrics", stack.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sluice_gateway_requests"), "{metrics}");
}

#[tokio::test]
async fn routing_rules_can_be_tried_through_the_api() {
    let stack = Stack::start_with("rules", &[], false).await.unwrap();
    let event = json!({"source": "shop", "detail-type": "OrderPlaced", "detail": {"total": 120, "sku": "BK-1"}});
    let cases = [
        (
            "/v1/rules/test-pattern",
            json!({"pattern": {"source": ["shop"], "detail": {"total": [{"numeric": [">", 100]}]}}, "event": event}),
            200,
            json!({"matches": true}),
        ),
        (
            "/v1/rules/test-pattern",
            json!({"pattern": {"detail": {"sku": [{"prefix": "CD-"}]}}, "event": event}),
            200,
            json!({"matches": false}),
        ),
        (
            "/v1/topics/test-filter-policy",
            json!({"filter_policy": {"color": ["red"]}, "scope": "MessageAttributes",
            "message": {"color": {"Type": "String", "Value": "red"}}}),
            200,
            json!({"matches": true}),
        ),
        (
            "/v1/topics/test-filter-policy",
            json!({"filter_policy": {"order": {"total": [{"numeric": ["<", 50]}]}}, "scope": "MessageBody",
            "message": {"order": {"total": 120}}}),
            200,
            json!({"matches": false}),
        ),
        (
            "/v1/rules/test-input-transformer",
            json!({"input_transformer": {"InputPathsMap": {"sku": "$.detail.sku"},
            "InputTemplate": "{\"item\": <sku>}"}, "event": event}),
            200,
            json!({"output": "{\"item\": \"BK-1\"}"}),
        ),
    ];
    for (path, body, status, expected) in cases {
        let (got, _, resp) = stack.post(path, &body).await;
        assert_eq!((got, &resp), (status, &expected), "{path} {body}");
    }

    // Invalid definitions: 400 problem+json naming where.
    let (got, _, resp) = stack
        .post(
            "/v1/rules/test-pattern",
            &json!({"pattern": {"a": [{"numeric": [">", "x"]}]}, "event": {}}),
        )
        .await;
    assert_eq!(got, 400, "{resp}");
    assert_eq!(resp["pointer"], "/pattern/a/0/numeric/1");
    let (got, _, resp) = stack
        .post(
            "/v1/topics/test-filter-policy",
            &json!({"filter_policy": {"a": {"b": ["x"]}}, "message": {}}),
        )
        .await;
    assert_eq!(got, 400, "{resp}");
    assert!(resp["detail"].as_str().unwrap().contains("nested"));
    let (got, _, resp) = stack
        .post(
            "/v1/rules/test-input-transformer",
            &json!({"input_transformer": {"InputTemplate": "<nope>"}, "event": {}}),
        )
        .await;
    assert_eq!(got, 400, "{resp}");
    let (got, _, _) = stack
        .post(
            "/v1/topics/test-filter-policy",
            &json!({"filter_policy": {"a": ["x"]}, "scope": "Body", "message": {}}),
        )
        .await;
    assert_eq!(got, 422);

    // Hostile input: huge, deep, invalid UTF-8, huge arrays → 4xx, and the gateway stays up.
    let raw = |body: Vec<u8>| {
        stack
            .req(reqwest::Method::POST, "/v1/rules/test-pattern")
            .header("content-type", "application/json")
            .body(body)
    };
    let deep = format!(
        r#"{{"pattern": {{"a": ["x"]}}, "event": {{"a": {}1{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let huge_array = format!(
        r#"{{"pattern": {{"a": ["x"]}}, "event": {{"a": [{}0]}}}}"#,
        "0,".repeat(200_000)
    );
    let hostile: Vec<(&str, Vec<u8>, u16)> = vec![
        ("deep nesting", deep.into_bytes(), 400),
        (
            "invalid UTF-8",
            b"{\"pattern\": {\"a\": [\"\xff\"]}, \"event\": {}}".to_vec(),
            400,
        ),
        ("huge array", huge_array.into_bytes(), 422),
    ];
    for (what, body, status) in hostile {
        let (got, resp) = send(raw(body)).await;
        assert_eq!(got, status, "{what}: {resp}");
    }
    assert_eq!(
        oversized_post(&stack.url, "/v1/rules/test-pattern", 10 << 20).await,
        413,
        "10 MB body"
    );
    let r = stack
        .http
        .get(format!("{}/healthz", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
