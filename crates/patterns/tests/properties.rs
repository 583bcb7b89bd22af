//! Property tests: on random events and patterns nothing panics, and the
//! multi-rule matcher agrees with evaluating each rule on its own.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{json, Value};
use sluice_patterns::sns::{FilterPolicy, Scope};
use sluice_patterns::{EventError, Matcher, Pattern, Scratch};

const KEYS: &[&str] = &["a", "b", "c", "a.b"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "x",
            "xy",
            "yx",
            "",
            "X",
            "10.0.0.1",
            "2001:db8::1",
            "x\ny"
        ])
        .prop_map(|s| json!(s)),
        (-3i64..4).prop_map(|n| json!(n)),
        prop::sample::select(vec![0.5f64, -0.0, 1e3]).prop_map(|n| json!(n)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Value::Null),
    ]
}

fn event_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), inner, 0..3).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

fn event() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), event_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn matcher_item() -> impl Strategy<Value = Value> {
    prop_oneof![
        scalar(),
        prop::sample::select(vec!["x", "y", ""]).prop_map(|s| json!({"prefix": s})),
        prop::sample::select(vec!["x", "y"]).prop_map(|s| json!({"suffix": s})),
        prop::sample::select(vec!["X", "xy"]).prop_map(|s| json!({"equals-ignore-case": s})),
        prop::sample::select(vec!["*", "x*", "*y", "x*y"]).prop_map(|s| json!({"wildcard": s})),
        prop::sample::select(vec![
            json!("x"),
            json!(["x", "xy"]),
            json!(1),
            json!({"prefix": "x"})
        ])
        .prop_map(|v| json!({"anything-but": v})),
        prop::sample::select(vec![
            json!([">", 0]),
            json!(["<=", 1]),
            json!([">=", -1, "<", 3])
        ])
        .prop_map(|v| json!({"numeric": v})),
        any::<bool>().prop_map(|b| json!({"exists": b})),
        Just(json!({"cidr": "10.0.0.0/8"})),
    ]
}

fn pattern() -> impl Strategy<Value = Value> {
    let leaf = prop::collection::vec(matcher_item(), 1..3)
        .prop_map(Value::Array)
        .boxed();
    let level = |inner: BoxedStrategy<Value>| {
        prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), inner, 1..3)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    };
    let nested = level(leaf.clone().boxed());
    let value = prop_oneof![3 => leaf, 1 => nested].boxed();
    let top = level(value);
    prop_oneof![
        4 => top.clone(),
        1 => prop::collection::vec(top, 2..3).prop_map(|alts| json!({"$or": alts})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn the_matcher_agrees_with_rule_by_rule(patterns in prop::collection::vec(pattern(), 1..12), events in prop::collection::vec(event(), 1..6)) {
        let compiled: Vec<Pattern> = patterns.iter().filter_map(|p| Pattern::parse(p).ok()).collect();
        let mut m = Matcher::new();
        for (i, p) in compiled.iter().enumerate() {
            m.add(format!("r{i}"), p);
        }
        for e in &events {
            let expected: Vec<String> = compiled
                .iter()
                .enumerate()
                .filter(|(_, p)| p.matches(e).unwrap())
                .map(|(i, _)| format!("r{i}"))
                .collect();
            let got: Vec<String> = m.matches(e).unwrap().into_iter().map(str::to_string).collect();
            prop_assert_eq!(&got, &expected, "event {}", e);
            // The same event as text, read without building it.
            let mut scratch = Scratch::default();
            let mut out = Vec::new();
            m.matches_json(&e.to_string(), &mut scratch, &mut out).unwrap();
            let from_text: Vec<String> = out.iter().map(|i| format!("r{i}")).collect();
            prop_assert_eq!(from_text, expected, "event text {}", e);
        }
    }

    #[test]
    fn arbitrary_json_never_panics_as_pattern_policy_or_event(p in event_value(), e in event_value()) {
        if let Ok(pattern) = Pattern::parse(&p) {
            let _ = pattern.matches(&e);
        }
        for scope in [Scope::MessageAttributes, Scope::MessageBody] {
            if let Ok(policy) = FilterPolicy::parse(&p, scope) {
                let _ = policy.matches(&e);
            }
        }
    }
}

/// Matching from text agrees with matching the parsed value where the text
/// says more than the value keeps: repeated keys (the last one counts),
/// escapes, whitespace; and text that is not a JSON object is refused.
#[test]
fn matching_text_agrees_with_the_parsed_event() {
    let rules = [
        json!({"a": ["x"]}),
        json!({"a": {"b": [1]}}),
        json!({"c": [{"prefix": "q\"u"}]}),
        json!({"d": {"e": [{"exists": false}]}}),
    ];
    let mut m = Matcher::new();
    for (i, r) in rules.iter().enumerate() {
        m.add(format!("r{i}"), &Pattern::parse(r).unwrap());
    }
    let texts = [
        r#"{"a": "y", "a": "x"}"#,
        r#"{"a": "x", "a": "y"}"#,
        r#"{"a": {"b": 1}, "a": {"b": 2}}"#,
        r#"{"a": {"b": 2}, "a": {"b": 1}}"#,
        r#"{"c": "q\"uote"}"#,
        r#"{"c": "\u0071\"u"}"#,
        r#"{"\u0061": "x"}"#,
        r#"{"a.b": 1}"#,
        r#"{"d": {"e": null}, "skipped": {"deep": [1, {"x": "\n"}]}}"#,
        r#"{"d": [{"e": 1}, {"f": 2}]}"#,
        " \n{ \"a\" : [ \"z\" , \"x\" ] }\t",
    ];
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    for text in texts {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut expected = Vec::new();
        m.matches_with(&value, &mut scratch, &mut expected).unwrap();
        m.matches_json(text, &mut scratch, &mut out).unwrap();
        assert_eq!(out, expected, "{text}");
    }
    for (text, want) in [
        ("[1]", EventError::NotAnObject),
        ("\"x\"", EventError::NotAnObject),
    ] {
        assert_eq!(
            m.matches_json(text, &mut scratch, &mut out),
            Err(want),
            "{text}"
        );
    }
    for text in [
        r#"{"a": "x""#,
        r#"{"a": "x"} {}"#,
        r#"{"skipped": [1,]}"#,
        "",
        "{\"a\": 01}",
    ] {
        assert!(
            matches!(
                m.matches_json(text, &mut scratch, &mut out),
                Err(EventError::NotJson(_))
            ),
            "{text}"
        );
    }
}
