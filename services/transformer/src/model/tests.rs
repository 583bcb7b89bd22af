use serde_json::json;
use sluice_proto::v1;

use super::*;
use crate::address;

fn policy() -> address::Policy {
    let mut deny = address::parse_list(address::DEFAULT_DENY).unwrap();
    deny.extend(address::parse_list("127.0.0.1:9082").unwrap());
    address::Policy::new(vec![], deny)
}

fn compile(rule: &v1::Rule) -> Result<CompiledRule, Violation> {
    let p = policy();
    compile_rule(
        rule,
        &Ctx {
            policy: &p,
            default_concurrency: 16,
            schedules: Default::default(),
            stored: false,
        },
    )
}

fn http(url: &str) -> v1::Target {
    v1::Target {
        id: "t1".into(),
        destination: Some(v1::target::Destination::Http(v1::HttpTarget {
            url: url.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn rule(pattern: serde_json::Value, targets: Vec<v1::Target>) -> v1::Rule {
    v1::Rule {
        bus: "default".into(),
        name: "r1".into(),
        event_pattern: pattern.to_string(),
        targets,
        ..Default::default()
    }
}

fn pointer(r: Result<CompiledRule, Violation>) -> String {
    r.unwrap_err().pointer
}

#[test]
fn a_rule_with_an_http_target_compiles_with_eventbridge_defaults() {
    let r = compile(&rule(
        json!({"source": ["shop"]}),
        vec![http("https://example.com/hook")],
    ))
    .unwrap();
    assert!(r.enabled);
    let t = &r.targets[0];
    assert_eq!(t.retry.max_retries, 185);
    assert_eq!(t.retry.max_age.as_secs(), 86_400);
    assert_eq!(t.max_concurrency, 16);
    assert_eq!(
        t.key,
        sluice_bus::subjects::target_key("default", "r1", "t1")
    );
    match &t.destination {
        Destination::Http(h) => assert_eq!(h.method, reqwest::Method::POST),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pattern_problems_point_into_the_pattern() {
    let r = rule(json!({"detail": {"n": [{"numeric": [">", "x"]}]}}), vec![]);
    assert_eq!(pointer(compile(&r)), "/event_pattern/detail/n/0/numeric/1");
    let mut r = rule(json!({}), vec![]);
    r.event_pattern = "{not json".into();
    assert_eq!(pointer(compile(&r)), "/event_pattern");
    r.event_pattern = format!("{{\"a\": [\"{}\"]}}", "x".repeat(5000));
    assert!(compile(&r).unwrap_err().message.contains("at most 4096"));
}

#[test]
fn target_problems_point_at_the_target_field() {
    let p = json!({"source": ["s"]});
    let cases: Vec<(v1::Target, &str)> = vec![
        (http("ftp://x/y"), "/targets/0/url"),
        (http("not a url"), "/targets/0/url"),
        (http("http://user:pw@example.com/"), "/targets/0/url"),
        (
            http("http://169.254.169.254/latest/meta-data"),
            "/targets/0/url",
        ),
        (http("http://[fe80::1]/"), "/targets/0/url"),
        (http("http://127.0.0.1:9082/"), "/targets/0/url"),
        (http("http://localhost:9082/"), "/targets/0/url"),
        (http("http://metadata.google.internal/"), "/targets/0/url"),
        (
            v1::Target {
                id: "bad id".into(),
                ..http("https://example.com")
            },
            "/targets/0/id",
        ),
        (
            v1::Target {
                destination: None,
                ..http("https://example.com")
            },
            "/targets/0/type",
        ),
        (
            v1::Target {
                retry_policy: Some(v1::RetryPolicy {
                    maximum_retry_attempts: Some(186),
                    maximum_event_age_seconds: None,
                }),
                ..http("https://example.com")
            },
            "/targets/0/retry_policy/maximum_retry_attempts",
        ),
        (
            v1::Target {
                retry_policy: Some(v1::RetryPolicy {
                    maximum_retry_attempts: None,
                    maximum_event_age_seconds: Some(59),
                }),
                ..http("https://example.com")
            },
            "/targets/0/retry_policy/maximum_event_age_seconds",
        ),
        (
            v1::Target {
                max_concurrency: Some(0),
                ..http("https://example.com")
            },
            "/targets/0/max_concurrency",
        ),
        (
            v1::Target {
                rate_per_second: Some(f64::NAN),
                ..http("https://example.com")
            },
            "/targets/0/rate_per_second",
        ),
        (
            v1::Target {
                input: Some(v1::target::Input::InputJson("{oops".into())),
                ..http("https://example.com")
            },
            "/targets/0/input",
        ),
        (
            v1::Target {
                input: Some(v1::target::Input::InputPath("detail".into())),
                ..http("https://example.com")
            },
            "/targets/0/input_path",
        ),
        (
            v1::Target {
                input: Some(v1::target::Input::InputTransformer(v1::InputTransformer {
                    input_paths_map: [("a".to_string(), "$.detail".to_string())].into(),
                    input_template: "{\"x\": <b>}".into(),
                })),
                ..http("https://example.com")
            },
            "/targets/0/input_transformer/input_template",
        ),
        (
            v1::Target {
                destination: Some(v1::target::Destination::Queue(v1::QueueTarget {
                    queue: "a.b".into(),
                })),
                ..http("https://example.com")
            },
            "/targets/0/queue",
        ),
        (
            v1::Target {
                destination: Some(v1::target::Destination::Workflow(v1::WorkflowTarget {
                    workflow_type: String::new(),
                })),
                ..http("https://example.com")
            },
            "/targets/0/workflow_type",
        ),
    ];
    for (target, want) in cases {
        let got = compile(&rule(p.clone(), vec![target.clone()]));
        assert_eq!(pointer(got), want, "{target:?}");
    }
}

#[test]
fn reserved_and_invalid_headers_are_refused() {
    for (name, value) in [
        ("host", "x"),
        ("sluice-delivery-id", "x"),
        ("traceparent", "x"),
        ("bad header", "x"),
        ("x-ok", "line\nbreak"),
    ] {
        let mut t = http("https://example.com");
        if let Some(v1::target::Destination::Http(h)) = t.destination.as_mut() {
            h.headers.insert(name.into(), value.into());
        }
        let got = pointer(compile(&rule(json!({"a": [1]}), vec![t])));
        assert!(got.starts_with("/targets/0/headers/"), "{name}: {got}");
    }
}

#[test]
fn limits_are_enforced_with_clear_errors() {
    let targets: Vec<v1::Target> = (0..6)
        .map(|i| v1::Target {
            id: format!("t{i}"),
            ..http("https://example.com")
        })
        .collect();
    let e = compile(&rule(json!({"a": [1]}), targets)).unwrap_err();
    assert_eq!(e.pointer, "/targets");
    assert!(e.message.contains("at most 5"));
    let dup = vec![http("https://a.example"), http("https://b.example")];
    assert_eq!(
        pointer(compile(&rule(json!({"a": [1]}), dup))),
        "/targets/1/id"
    );
    let mut r = rule(json!({"a": [1]}), vec![]);
    r.description = "d".repeat(513);
    assert_eq!(pointer(compile(&r)), "/description");
    r.description.clear();
    r.state = 7;
    assert_eq!(pointer(compile(&r)), "/state");
}

#[test]
fn secrets_are_redacted_on_read_and_kept_when_written_back() {
    let mut t = http("https://example.com");
    if let Some(v1::target::Destination::Http(h)) = t.destination.as_mut() {
        h.auth = Some(v1::HttpAuth {
            kind: Some(v1::http_auth::Kind::ApiKey(v1::ApiKeyAuth {
                header: "x-key".into(),
                value: "s3cret".into(),
            })),
        });
    }
    let stored = rule(json!({"a": [1]}), vec![t.clone()]);
    let shown = redacted(&stored);
    let mut back = shown.targets[0].clone();
    assert!(format!("{back:?}").contains(REDACTED));
    assert!(!format!("{shown:?}").contains("s3cret"));
    keep_secrets(&mut back, Some(&stored.targets[0]));
    assert_eq!(back, t, "the stored secret survives a read-modify-write");
}

#[test]
fn a_stored_secret_never_follows_a_changed_destination() {
    let with_key = |url: &str, header: &str, value: &str| {
        let mut t = http(url);
        if let Some(v1::target::Destination::Http(h)) = t.destination.as_mut() {
            h.auth = Some(v1::HttpAuth {
                kind: Some(v1::http_auth::Kind::ApiKey(v1::ApiKeyAuth {
                    header: header.into(),
                    value: value.into(),
                })),
            });
        }
        t
    };
    let stored = with_key("https://example.com/a", "x-key", "s3cret");
    for (url, header) in [
        ("https://evil.example/a", "x-key"),
        ("https://example.com/a", "x-other"),
    ] {
        let mut back = with_key(url, header, REDACTED);
        keep_secrets(&mut back, Some(&stored));
        let e = compile(&rule(json!({"a": [1]}), vec![back])).unwrap_err();
        assert_eq!(e.pointer, "/targets/0/auth/value", "{url} {header}");
    }
    let mut same = with_key("https://example.com/a", "X-Key", REDACTED);
    keep_secrets(&mut same, Some(&stored));
    assert!(compile(&rule(json!({"a": [1]}), vec![same])).is_ok());
}

#[test]
fn an_authorization_header_goes_in_auth() {
    let mut t = http("https://example.com");
    if let Some(v1::target::Destination::Http(h)) = t.destination.as_mut() {
        h.headers.insert("Authorization".into(), "Bearer x".into());
    }
    let got = pointer(compile(&rule(json!({"a": [1]}), vec![t])));
    assert_eq!(got, "/targets/0/headers/Authorization");
}

#[test]
fn a_disabled_rule_compiles_disabled() {
    let mut r = rule(json!({"a": [1]}), vec![]);
    r.state = v1::RuleState::Disabled as i32;
    assert!(!compile(&r).unwrap().enabled);
}
