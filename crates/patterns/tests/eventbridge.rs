//! EventBridge pattern semantics, case by case. Each case is (pattern,
//! event, expected); the rule it checks is cited where AWS is subtle.
//! Sources: AWS EventBridge user guide (content filtering, arrays, null
//! values) and AWS's reference matcher event-ruler (README and behaviour).

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use sluice_patterns::{Matcher, Pattern};

fn check(cases: &[(Value, Value, bool)]) {
    let mut wrong = Vec::new();
    for (pattern, event, expected) in cases {
        let p = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let single = p.matches(event).unwrap();
        let mut m = Matcher::new();
        m.add("r", &p);
        let multi = !m.matches(event).unwrap().is_empty();
        if single != *expected || multi != *expected {
            wrong.push(format!(
                "{pattern} vs {event}: expected {expected}, single {single}, matcher {multi}"
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn exact_values() {
    check(&[
        (
            json!({"source": ["aws.ec2"]}),
            json!({"source": "aws.ec2"}),
            true,
        ),
        (
            json!({"source": ["aws.ec2"]}),
            json!({"source": "aws.EC2"}),
            false,
        ),
        (json!({"source": ["a", "b"]}), json!({"source": "b"}), true),
        // Numbers compare by value (AWS matches [300] to 300.0).
        (json!({"n": [300]}), json!({"n": 300.0}), true),
        (json!({"n": [5]}), json!({"n": 5e0}), true),
        (json!({"n": [0]}), json!({"n": -0.0}), true),
        // A number never equals a string.
        (json!({"n": [5]}), json!({"n": "5"}), false),
        (json!({"n": ["5"]}), json!({"n": 5}), false),
        (json!({"b": [true]}), json!({"b": true}), true),
        (json!({"b": [true]}), json!({"b": "true"}), false),
        (json!({"b": ["true"]}), json!({"b": true}), false),
        // null matches only a present null (EventBridge guide: null values).
        (json!({"x": [null]}), json!({"x": null}), true),
        (json!({"x": [null]}), json!({}), false),
        (json!({"x": [null]}), json!({"x": ""}), false),
        (json!({"x": [""]}), json!({"x": ""}), true),
        (json!({"x": [""]}), json!({"x": null}), false),
    ]);
}

#[test]
fn nesting_arrays_and_dots() {
    check(&[
        (
            json!({"detail": {"state": ["running"]}}),
            json!({"detail": {"state": "running"}}),
            true,
        ),
        (
            json!({"detail": {"state": ["running"]}}),
            json!({"detail": {"state": "stopped"}}),
            false,
        ),
        // An event array matches if any element does.
        (json!({"a": ["x", "y"]}), json!({"a": ["q", "y"]}), true),
        (json!({"a": ["x", "y"]}), json!({"a": ["q", "z"]}), false),
        (json!({"a": ["x"]}), json!({"a": [[["x"]]]}), true),
        // A leaf pattern does not match an object, nor a nested pattern a scalar.
        (json!({"a": ["x"]}), json!({"a": {"b": "x"}}), false),
        (json!({"a": {"b": ["x"]}}), json!({"a": "x"}), false),
        // Dotted keys and nesting are the same path (event-ruler caveat).
        (json!({"a": {"b": [1]}}), json!({"a.b": 1}), true),
        (json!({"a.b": [1]}), json!({"a": {"b": 1}}), true),
        // Several fields: AND.
        (
            json!({"a": ["1"], "b": ["2"]}),
            json!({"a": "1", "b": "2"}),
            true,
        ),
        (
            json!({"a": ["1"], "b": ["2"]}),
            json!({"a": "1", "b": "3"}),
            false,
        ),
        (json!({"a": ["1"], "b": ["2"]}), json!({"a": "1"}), false),
    ]);
}

#[test]
fn array_consistency_within_arrays_of_objects() {
    // event-ruler README, "JSON Array Matching": fields matched inside an
    // array of objects must come from the same element.
    let emp = |extra: Value| {
        let mut list = vec![
            json!({"firstName": "John", "lastName": "Doe"}),
            json!({"firstName": "Anna", "lastName": "Smith"}),
        ];
        if !extra.is_null() {
            list.push(extra);
        }
        json!({"employees": list})
    };
    check(&[
        (
            json!({"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}),
            emp(Value::Null),
            true,
        ),
        (
            json!({"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}),
            emp(json!({"firstName": "Peter", "lastName": "Jones"})),
            false,
        ),
        (
            json!({"a": {"b": {"x": ["1"], "y": ["2"]}}}),
            json!({"a": [{"b": [{"x": "1"}, {"y": "2"}]}]}),
            false,
        ),
        (
            json!({"tags": ["t1"], "a": {"x": ["1"]}}),
            json!({"tags": ["t0", "t1"], "a": [{"x": "0"}, {"x": "1"}]}),
            true,
        ),
        (
            json!({"r": {"$or": [{"a": ["1"]}, {"b": ["1"]}], "c": ["1"]}}),
            json!({"r": [{"a": "1", "c": "0"}, {"b": "0", "c": "1"}]}),
            false,
        ),
        // exists:false inside an array is judged against the chosen element.
        (
            json!({"a": {"x": ["1"], "y": [{"exists": false}]}}),
            json!({"a": [{"x": "1", "y": "2"}, {"x": "1"}]}),
            true,
        ),
        (
            json!({"a": {"x": ["1"], "y": [{"exists": false}]}}),
            json!({"a": [{"x": "1", "y": "2"}, {"x": "2"}]}),
            false,
        ),
        (
            json!({"a": {"x": ["1"], "y": [{"exists": false}]}}),
            json!({"a": [{"x": "1"}, {"y": "2"}]}),
            true,
        ),
        (
            json!({"x": ["1"], "a": {"y": [{"exists": false}]}}),
            json!({"x": "1", "a": [{"y": "2"}, {"z": "3"}]}),
            false,
        ),
    ]);
}

#[test]
fn missing_null_empty_and_objects() {
    // EventBridge guide "exists matching" and event-ruler: exists looks at leaves only.
    let p_true = json!({"f": [{"exists": true}]});
    let p_false = json!({"f": [{"exists": false}]});
    let p_ab = json!({"f": [{"anything-but": "x"}]});
    let rows = [
        (json!({}), false, true, false),
        (json!({"f": null}), true, false, true),
        (json!({"f": ""}), true, false, true),
        (json!({"f": []}), false, true, false),
        (json!({"f": {"g": 1}}), false, true, false),
        (json!({"f": {}}), false, true, false),
        (json!({"f": [{"b": 1}]}), false, true, false),
        (json!({"f": ["x", null]}), true, false, true),
    ];
    let mut cases = Vec::new();
    for (event, exists_true, exists_false, anything_but) in rows {
        cases.push((p_true.clone(), event.clone(), exists_true));
        cases.push((p_false.clone(), event.clone(), exists_false));
        cases.push((p_ab.clone(), event, anything_but));
    }
    cases.extend([
        (
            json!({"a": {"b": [{"exists": false}]}}),
            json!({"c": 1}),
            true,
        ),
        (
            json!({"f": [{"exists": true}, {"exists": false}]}),
            json!({}),
            true,
        ),
        (
            json!({"f": [{"exists": false}, "x"]}),
            json!({"f": "x"}),
            true,
        ),
        (json!({"f": [{"exists": false}, "x"]}), json!({}), true),
        (
            json!({"f": [{"exists": false}, "x"]}),
            json!({"f": "y"}),
            false,
        ),
    ]);
    check(&cases);
}

#[test]
fn string_operators() {
    check(&[
        (
            json!({"t": [{"prefix": "2017-10-02"}]}),
            json!({"t": "2017-10-02T10:00"}),
            true,
        ),
        (
            json!({"t": [{"prefix": "2017"}]}),
            json!({"t": "1999"}),
            false,
        ),
        (json!({"t": [{"prefix": ""}]}), json!({"t": ""}), true),
        (json!({"t": [{"prefix": ""}]}), json!({"t": 5}), false),
        (json!({"t": [{"prefix": "1"}]}), json!({"t": 123}), false),
        (
            json!({"f": [{"suffix": ".png"}]}),
            json!({"f": "cat.png"}),
            true,
        ),
        (
            json!({"f": [{"suffix": ".png"}]}),
            json!({"f": "cat.PNG"}),
            false,
        ),
        (
            json!({"f": [{"suffix": {"equals-ignore-case": ".png"}}]}),
            json!({"f": "cat.PNG"}),
            true,
        ),
        (
            json!({"f": [{"prefix": {"equals-ignore-case": "EventB"}}]}),
            json!({"f": "eventbridge"}),
            true,
        ),
        (
            json!({"n": [{"equals-ignore-case": "alice"}]}),
            json!({"n": "ALICE"}),
            true,
        ),
        (
            json!({"n": [{"equals-ignore-case": "alice"}]}),
            json!({"n": "alic"}),
            false,
        ),
        (
            json!({"n": [{"equals-ignore-case": "straße"}]}),
            json!({"n": "STRASSE"}),
            true,
        ),
        (
            json!({"n": [{"equals-ignore-case": "5"}]}),
            json!({"n": 5}),
            false,
        ),
        (
            json!({"s": [{"wildcard": "Simple*Service"}]}),
            json!({"s": "SimpleQueueService"}),
            true,
        ),
        (json!({"s": [{"wildcard": "*"}]}), json!({"s": ""}), true),
        (json!({"s": [{"wildcard": "*"}]}), json!({"s": 5}), false),
        (
            json!({"s": [{"wildcard": "a\\*b"}]}),
            json!({"s": "a*b"}),
            true,
        ),
        (
            json!({"s": [{"wildcard": "a\\*b"}]}),
            json!({"s": "axb"}),
            false,
        ),
        (json!({"s": [{"wildcard": ""}]}), json!({"s": ""}), true),
    ]);
}

#[test]
fn anything_but() {
    check(&[
        (
            json!({"s": [{"anything-but": "x"}]}),
            json!({"s": "y"}),
            true,
        ),
        (
            json!({"s": [{"anything-but": "x"}]}),
            json!({"s": "x"}),
            false,
        ),
        (
            json!({"s": [{"anything-but": ["x", "y"]}]}),
            json!({"s": ["x", "y"]}),
            false,
        ),
        (
            json!({"s": [{"anything-but": ["x", "y"]}]}),
            json!({"s": ["x", "z"]}),
            true,
        ),
        // A string exclusion lets numbers through, a numeric one strings
        // (AWS content_anything_prefix_int_value; event-ruler).
        (json!({"s": [{"anything-but": "x"}]}), json!({"s": 5}), true),
        (
            json!({"s": [{"anything-but": {"prefix": "init"}}]}),
            json!({"s": 12}),
            true,
        ),
        (json!({"s": [{"anything-but": 5}]}), json!({"s": "5"}), true),
        (
            json!({"s": [{"anything-but": 5}]}),
            json!({"s": 5.0}),
            false,
        ),
        (
            json!({"s": [{"anything-but": [100, 200]}]}),
            json!({"s": 300}),
            true,
        ),
        (
            json!({"s": [{"anything-but": {"prefix": "init"}}]}),
            json!({"s": "initializing"}),
            false,
        ),
        (
            json!({"s": [{"anything-but": {"prefix": ["init", "err"]}}]}),
            json!({"s": "error"}),
            false,
        ),
        (
            json!({"s": [{"anything-but": {"suffix": ".tmp"}}]}),
            json!({"s": "a.txt"}),
            true,
        ),
        (
            json!({"s": [{"anything-but": {"equals-ignore-case": ["A", "b"]}}]}),
            json!({"s": "B"}),
            false,
        ),
        (
            json!({"s": [{"anything-but": {"wildcard": "*/bin/*.jar"}}]}),
            json!({"s": "/usr/bin/x.jar"}),
            false,
        ),
        (
            json!({"s": [{"anything-but": {"wildcard": "*/bin/*.jar"}}]}),
            json!({"s": "/usr/lib/x.jar"}),
            true,
        ),
        (
            json!({"s": [{"anything-but": ""}]}),
            json!({"s": ""}),
            false,
        ),
        // anything-but never matches a missing field.
        (json!({"s": [{"anything-but": "x"}]}), json!({}), false),
        (
            json!({"s": [{"anything-but": ["roses"]}, {"exists": false}]}),
            json!({}),
            true,
        ),
    ]);
}

#[test]
fn numeric() {
    check(&[
        (
            json!({"n": [{"numeric": [">", 0, "<=", 5]}]}),
            json!({"n": 5}),
            true,
        ),
        (
            json!({"n": [{"numeric": [">", 0, "<=", 5]}]}),
            json!({"n": 0}),
            false,
        ),
        (
            json!({"n": [{"numeric": ["<", 10]}]}),
            json!({"n": 9.99}),
            true,
        ),
        (
            json!({"n": [{"numeric": ["=", 301.8]}]}),
            json!({"n": 301.8}),
            true,
        ),
        (
            json!({"n": [{"numeric": [">=", 1e3]}]}),
            json!({"n": 1000}),
            true,
        ),
        (
            json!({"n": [{"numeric": [">", 100]}]}),
            json!({"n": 101.0}),
            true,
        ),
        // numeric matches JSON numbers only (AWS numeric-string_NEG).
        (
            json!({"n": [{"numeric": [">", 0]}]}),
            json!({"n": "5"}),
            false,
        ),
        (
            json!({"n": [{"numeric": [">", 0]}]}),
            json!({"n": null}),
            false,
        ),
        (
            json!({"n": [{"numeric": [">", 10]}]}),
            json!({"n": [1, 20]}),
            true,
        ),
        (
            json!({"n": [{"numeric": ["=", 0.3]}]}),
            json!({"n": 0.30000000000000004}),
            false,
        ),
    ]);
}

#[test]
fn cidr() {
    check(&[
        (
            json!({"ip": [{"cidr": "10.0.0.0/24"}]}),
            json!({"ip": "10.0.0.255"}),
            true,
        ),
        (
            json!({"ip": [{"cidr": "10.0.0.0/24"}]}),
            json!({"ip": "10.0.1.0"}),
            false,
        ),
        (
            json!({"ip": [{"cidr": "10.0.0.0/24"}]}),
            json!({"ip": 123}),
            false,
        ),
        (
            json!({"ip": [{"cidr": "10.0.0.0/24"}]}),
            json!({"ip": "10.0.0.1:80"}),
            false,
        ),
        (
            json!({"ip": [{"cidr": "2001:db8::/32"}]}),
            json!({"ip": "2001:0DB8::1"}),
            true,
        ),
    ]);
}

#[test]
fn or() {
    let p = json!({"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPU"]}, {"namespace": ["AWS/EC2"]}]});
    check(&[
        (
            p.clone(),
            json!({"source": "aws.cloudwatch", "namespace": "AWS/EC2"}),
            true,
        ),
        (
            p.clone(),
            json!({"source": "aws.cloudwatch", "namespace": "AWS/ES"}),
            false,
        ),
        (p, json!({"source": "other", "metricName": "CPU"}), false),
        (
            json!({"detail": {"$or": [
                {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
                {"d-count": [{"numeric": ["<", 10]}]},
                {"x-limit": [{"numeric": ["=", 301.8]}]}]}}),
            json!({"detail": {"c-count": 0, "d-count": 0, "x-limit": 901.8}}),
            true,
        ),
        (
            json!({"$or": [{"a": ["1"]}, {"$or": [{"b": ["2"]}, {"c": ["3"]}]}]}),
            json!({"c": "3"}),
            true,
        ),
    ]);
}

#[test]
fn invalid_patterns_are_rejected_with_what_and_where() {
    let cases = [
        (json!(["x"]), "", "Filter is not an object"),
        (json!({}), "", "Empty objects are not allowed"),
        (json!({"a": {}}), "/a", "Empty objects are not allowed"),
        (
            json!({"a": "x"}),
            "/a",
            "\"a\" must be an object or an array",
        ),
        (json!({"a": []}), "/a", "Empty arrays are not allowed"),
        (
            json!({"a": [["x"]]}),
            "/a/0",
            "Match value must be String, number, true, false, or null",
        ),
        (
            json!({"a": [{}]}),
            "/a/0",
            "Match expression name not found",
        ),
        (
            json!({"a": [{"foo": "x"}]}),
            "/a/0/foo",
            "Unrecognized match type foo",
        ),
        (
            json!({"a": [{"NUMERIC": [">", 1]}]}),
            "/a/0/NUMERIC",
            "Unrecognized match type NUMERIC",
        ),
        (
            json!({"a": [{"prefix": "x", "suffix": "y"}]}),
            "/a/0",
            "Only one key allowed in match expression",
        ),
        (
            json!({"a": [{"prefix": 5}]}),
            "/a/0/prefix",
            "prefix match pattern must be a string",
        ),
        (
            json!({"a": [{"prefix": {"wildcard": "a"}}]}),
            "/a/0/prefix",
            "Unsupported prefix pattern: wildcard",
        ),
        (
            json!({"a": [{"wildcard": "a**b"}]}),
            "/a/0/wildcard",
            "Consecutive wildcard characters at pos 2",
        ),
        (
            json!({"a": [{"wildcard": "a\\b"}]}),
            "/a/0/wildcard",
            "Invalid escape character at pos 2",
        ),
        (
            json!({"a": [{"anything-but": []}]}),
            "/a/0/anything-but",
            "mixed type is not supported",
        ),
        (
            json!({"a": [{"anything-but": ["x", 1]}]}),
            "/a/0/anything-but",
            "mixed type is not supported",
        ),
        (
            json!({"a": [{"anything-but": [null]}]}),
            "/a/0/anything-but/0",
            "null is not supported",
        ),
        (
            json!({"a": [{"anything-but": true}]}),
            "/a/0/anything-but",
            "must be an array or single string/number",
        ),
        (
            json!({"a": [{"anything-but": {"numeric": [">", 1]}}]}),
            "/a/0/anything-but",
            "Unsupported anything-but pattern: numeric",
        ),
        (
            json!({"a": [{"anything-but": {"prefix": ""}}]}),
            "/a/0/anything-but/prefix",
            "Null prefix/suffix not allowed",
        ),
        (
            json!({"a": [{"anything-but": {"prefix": {"equals-ignore-case": "x"}}}]}),
            "/a/0/anything-but/prefix",
            "must be an array or single string/number",
        ),
        (
            json!({"a": [{"numeric": 5}]}),
            "/a/0/numeric",
            "Value of numeric must be an array.",
        ),
        (
            json!({"a": [{"numeric": []}]}),
            "/a/0/numeric",
            "Invalid member in numeric match: ]",
        ),
        (
            json!({"a": [{"numeric": ["!=", 5]}]}),
            "/a/0/numeric/0",
            "Unrecognized numeric range operator: !=",
        ),
        (
            json!({"a": [{"numeric": [">", "1"]}]}),
            "/a/0/numeric/1",
            "Value of > must be numeric",
        ),
        (
            json!({"a": [{"numeric": ["=", 1, "<", 2]}]}),
            "/a/0/numeric",
            "Too many elements in numeric expression",
        ),
        (
            json!({"a": [{"numeric": [">", 1, ">", 2]}]}),
            "/a/0/numeric/2",
            "Bad numeric range operator: >",
        ),
        (
            json!({"a": [{"numeric": [">", 20, 30]}]}),
            "/a/0/numeric/2",
            "Bad value in numeric range: 30",
        ),
        (
            json!({"a": [{"numeric": [">=", 5, "<=", 5]}]}),
            "/a/0/numeric",
            "Bottom must be less than top",
        ),
        (
            json!({"a": [{"numeric": [">", 0, "<", 5, "<", 6]}]}),
            "/a/0/numeric",
            "Too many terms in numeric range expression",
        ),
        (
            json!({"a": [{"numeric": ["=", 9007199254740993u64]}]}),
            "/a/0/numeric/1",
            "Cannot compare number",
        ),
        (
            json!({"a": [{"exists": "true"}]}),
            "/a/0/exists",
            "exists match pattern must be either true or false.",
        ),
        (
            json!({"a": [{"cidr": "10.0.0.0"}]}),
            "/a/0/cidr",
            "Malformed CIDR, one '/' required",
        ),
        (
            json!({"a": [{"cidr": "10.0.0.0/32"}]}),
            "/a/0/cidr",
            "IPv4 mask bits must be < 32",
        ),
        (json!({"$or": [{"a": ["1"]}]}), "/$or", "at least 2 Objects"),
        (
            json!({"$or": {"a": ["1"]}}),
            "/$or",
            "It must be an Array followed with $or.",
        ),
        (
            json!({"$or": [{"a": ["1"]}, "x"]}),
            "/$or/1",
            "Only JSON object is allowed",
        ),
        (
            json!({"$or": [{"a": ["1"]}, {"prefix": ["x"]}]}),
            "/$or/1",
            "prefix is Ruler reserved fieldName",
        ),
    ];
    let mut wrong = Vec::new();
    for (pattern, pointer, message) in cases {
        match Pattern::parse(&pattern) {
            Ok(_) => wrong.push(format!("{pattern}: accepted")),
            Err(e) if e.pointer != pointer || !e.message.contains(message) => wrong.push(format!(
                "{pattern}: got {:?} at {:?}, expected {message:?} at {pointer:?}",
                e.message, e.pointer
            )),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn or_expansion_and_size_are_bounded() {
    // 11 × 11 × 11 = 1331 branches > 1000.
    let alt = |k: &str| json!((0..11).map(|i| json!({k: [i]})).collect::<Vec<_>>());
    let p = json!({"$or": alt("a"), "x": {"$or": alt("b")}, "y": {"$or": alt("c")}});
    assert!(Pattern::parse(&p)
        .unwrap_err()
        .message
        .contains("exceed 1000"));
    let big = json!({"a": (0..2000).map(|i| json!(format!("v{i}"))).collect::<Vec<_>>()});
    assert!(Pattern::parse(&big)
        .unwrap_err()
        .message
        .contains("at most 4096"));
}

#[test]
fn hostile_events_are_bounded() {
    let p = Pattern::parse(&json!({"a": ["x"]})).unwrap();
    assert!(p.matches(&json!(["not", "an", "object"])).is_err());
    // Deep nesting built in code (a parser would refuse it first).
    let mut deep = json!("x");
    for _ in 0..200 {
        deep = json!({"a": deep});
    }
    let deep_p = Pattern::parse(&json!({"a": {"a": ["x"]}})).unwrap();
    assert!(
        deep_p.matches(&deep).is_ok(),
        "paths no rule names are not walked"
    );
    let mut pathy = json!("x");
    let mut key = String::new();
    for i in 0..200 {
        pathy = json!({"a": pathy});
        key = if i == 0 {
            "a".into()
        } else {
            format!("a.{key}")
        };
    }
    let pathy_p = Pattern::parse(&json!({key: ["x"]})).unwrap();
    assert!(
        pathy_p.matches(&pathy).is_err(),
        "a rule reaching 200 levels down hits the depth bound"
    );
    // Huge arrays of objects cannot make the consistency search explode.
    let many: Vec<Value> = (0..2000)
        .map(|i| json!({"x": "1", "y": format!("{i}")}))
        .collect();
    let p = Pattern::parse(&json!({"a": {"x": ["1"], "y": ["nope"]}})).unwrap();
    let r = p.matches(&json!({"a": many}));
    assert!(matches!(r, Ok(false) | Err(_)));
}

#[test]
fn the_matcher_returns_every_matching_rule_once() {
    let mut m = Matcher::new();
    let rules = [
        ("by-source", json!({"source": ["shop"]})),
        (
            "by-type",
            json!({"detail-type": ["OrderPlaced", "OrderShipped"]}),
        ),
        ("by-prefix", json!({"detail": {"sku": [{"prefix": "BK-"}]}})),
        ("absent", json!({"detail": {"coupon": [{"exists": false}]}})),
        (
            "or",
            json!({"$or": [{"source": ["shop"]}, {"detail-type": ["OrderPlaced"]}]}),
        ),
        ("never", json!({"source": ["other"]})),
        (
            "numeric",
            json!({"detail": {"total": [{"numeric": [">", 100]}]}}),
        ),
    ];
    for (name, p) in &rules {
        m.add(*name, &Pattern::parse(p).unwrap());
    }
    let event = json!({"source": "shop", "detail-type": "OrderPlaced",
        "detail": {"sku": "BK-1", "total": 150}});
    assert_eq!(
        m.matches(&event).unwrap(),
        vec![
            "by-source",
            "by-type",
            "by-prefix",
            "absent",
            "or",
            "numeric"
        ]
    );
    assert_eq!(
        m.matches(&json!({"detail": {"coupon": "X"}})).unwrap(),
        Vec::<&str>::new()
    );
    assert_eq!(m.matches(&json!({})).unwrap(), vec!["absent"]);
}
