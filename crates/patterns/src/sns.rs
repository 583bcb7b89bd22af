//! SNS subscription filter policies, both scopes.
//!
//! The policy language is the event-pattern language with SNS's operator
//! set (`wildcard` with at most 3 `*`; `anything-but` takes values or `prefix` only;
//! `exists: true` needs a non-null value) and SNS's limits: at most 5 keys,
//! at most 150 combinations, 256 KiB. With scope `MessageAttributes` the
//! policy is flat and matched against the message attributes by type
//! (`String`, `String.Array`, `Number`; `Binary` never matches); with
//! `MessageBody` it may nest and is matched against the JSON body.

use serde_json::{Map, Value};

use crate::error::{EventError, PatternError, Pointer};
use crate::ops::Dialect;
use crate::pattern::{compile, Pattern};

/// Largest policy, serialised.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Most keys in a policy.
pub const MAX_KEYS: usize = 5;
/// Most value combinations in a policy.
pub const MAX_COMBINATIONS: u64 = 150;

/// What a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The message attributes (SNS's default).
    MessageAttributes,
    /// The message body, a JSON object.
    MessageBody,
}

impl Scope {
    /// Parses SNS's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "MessageAttributes" => Some(Self::MessageAttributes),
            "MessageBody" => Some(Self::MessageBody),
            _ => None,
        }
    }
}

/// A compiled filter policy.
#[derive(Debug, Clone)]
pub struct FilterPolicy {
    scope: Scope,
    pattern: Pattern,
}

impl FilterPolicy {
    /// Compiles a policy for `scope`, enforcing SNS's limits.
    pub fn parse(policy: &Value, scope: Scope) -> Result<Self, PatternError> {
        let root = Pointer::Root;
        let size = serde_json::to_string(policy).map(|s| s.len()).unwrap_or(0);
        if size > MAX_POLICY_BYTES {
            return Err(PatternError::new(
                &root,
                format!("Filter policy is {size} bytes; at most {MAX_POLICY_BYTES} are allowed"),
            ));
        }
        let Value::Object(map) = policy else {
            return Err(PatternError::new(&root, "Filter is not an object"));
        };
        if scope == Scope::MessageAttributes {
            check_flat(map, &root)?;
        }
        let branches = compile(policy, Dialect::Sns)?;
        crate::complexity::check(policy)?;
        let mut keys: Vec<&str> = branches
            .iter()
            .flat_map(|b| b.conds.iter().map(|(p, _)| p.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() > MAX_KEYS {
            return Err(PatternError::new(
                &root,
                format!("Filter policy can not have more than {MAX_KEYS} keys"),
            ));
        }
        let combinations = combinations(map, 1, 1);
        if combinations > MAX_COMBINATIONS {
            return Err(PatternError::new(
                &root,
                format!("Filter policy is too complex ({combinations} combinations; at most {MAX_COMBINATIONS})"),
            ));
        }
        Ok(Self {
            scope,
            pattern: Pattern::from_branches(branches)?,
        })
    }

    /// The policy's scope.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Whether a message matches: for `MessageBody` the body (a non-object
    /// body matches nothing); for `MessageAttributes` the attributes map
    /// `{"name": {"Type": "String", "Value": "red"}, ...}`.
    pub fn matches(&self, message: &Value) -> Result<bool, EventError> {
        match self.scope {
            Scope::MessageBody => {
                if !message.is_object() {
                    return Ok(false);
                }
                self.pattern.matches(message)
            }
            Scope::MessageAttributes => {
                let Value::Object(attrs) = message else {
                    return Err(EventError::BadAttributes(
                        "the message attributes must be an object".into(),
                    ));
                };
                // SNS: a message without attributes matches no policy (not even exists:false).
                if attrs.is_empty() {
                    return Ok(false);
                }
                self.pattern
                    .matches(&Value::Object(typed_attributes(attrs)?))
            }
        }
    }
}

/// `{"name": {"Type", "Value"}}` → `{"name": <typed value>}`; Binary attributes are left out.
fn typed_attributes(attrs: &Map<String, Value>) -> Result<Map<String, Value>, EventError> {
    let mut out = Map::new();
    for (name, attr) in attrs {
        let bad = |what: &str| EventError::BadAttributes(format!("attribute {name:?}: {what}"));
        let ty = attr
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("needs a string \"Type\""))?;
        let value = attr
            .get("Value")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("needs a string \"Value\""))?;
        let typed = match ty.split('.').next().unwrap_or(ty) {
            _ if ty == "String.Array" || ty.starts_with("String.Array.") => {
                match serde_json::from_str::<Value>(value) {
                    Ok(v @ Value::Array(_)) => v,
                    _ => return Err(bad("a String.Array value must be a JSON array")),
                }
            }
            "String" => Value::String(value.to_string()),
            "Number" => match value.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                _ => return Err(bad("a Number value must be a number")),
            },
            "Binary" => continue,
            _ => return Err(bad("Type must be String, String.Array, Number or Binary")),
        };
        out.insert(name.clone(), typed);
    }
    Ok(out)
}

fn check_flat(map: &Map<String, Value>, at: &Pointer<'_>) -> Result<(), PatternError> {
    for (key, value) in map {
        let here = at.key(key);
        match value {
            Value::Object(_) => {
                return Err(PatternError::new(
                    &here,
                    "Filter policy scope MessageAttributes does not support nested filter policy",
                ))
            }
            Value::Array(items) if key == "$or" => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Object(branch) = item {
                        check_flat(branch, &here.index(i))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// SNS's combination count: values multiply, weighted by nesting depth;
/// `$or` branches add.
fn combinations(map: &Map<String, Value>, depth: u64, acc: u64) -> u64 {
    let mut acc = acc;
    for (key, value) in map {
        acc = match value {
            Value::Object(obj) => combinations(obj, depth + 1, acc),
            Value::Array(items) if key == "$or" => items
                .iter()
                .filter_map(Value::as_object)
                .map(|branch| combinations(branch, depth, acc))
                .fold(0u64, u64::saturating_add),
            Value::Array(items) => acc.saturating_mul(items.len() as u64).saturating_mul(depth),
            _ => acc,
        };
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(pairs: &[(&str, &str, &str)]) -> Value {
        let mut m = Map::new();
        for (k, t, v) in pairs {
            m.insert((*k).into(), json!({"Type": t, "Value": v}));
        }
        Value::Object(m)
    }

    fn policy(p: Value, scope: Scope) -> FilterPolicy {
        FilterPolicy::parse(&p, scope).unwrap()
    }

    #[test]
    fn attribute_types_decide_how_values_compare() {
        let p = policy(
            json!({"store": ["example_corp"], "price_usd": [{"numeric": [">=", 100]}]}),
            Scope::MessageAttributes,
        );
        assert!(p
            .matches(&attrs(&[
                ("store", "String", "example_corp"),
                ("price_usd", "Number", "210.75")
            ]))
            .unwrap());
        assert!(!p
            .matches(&attrs(&[
                ("store", "String", "example_corp"),
                ("price_usd", "Number", "99")
            ]))
            .unwrap());
        // A String attribute that looks like a number is still a string.
        assert!(!p
            .matches(&attrs(&[
                ("store", "String", "example_corp"),
                ("price_usd", "String", "210")
            ]))
            .unwrap());
        let arr = policy(json!({"sports": ["rugby"]}), Scope::MessageAttributes);
        assert!(arr
            .matches(&attrs(&[(
                "sports",
                "String.Array",
                r#"["rugby","baseball"]"#
            )]))
            .unwrap());
        assert!(!arr
            .matches(&attrs(&[("sports", "String.Array", r#"["football"]"#)]))
            .unwrap());
        // Binary never matches a value condition.
        let bin = policy(
            json!({"blob": [{"exists": true}]}),
            Scope::MessageAttributes,
        );
        assert!(!bin.matches(&attrs(&[("blob", "Binary", "AAEC")])).unwrap());
    }

    #[test]
    fn exists_differs_from_eventbridge() {
        // SNS: exists:true needs a non-null value; exists:false needs at least one attribute.
        let t = policy(json!({"k": [{"exists": true}]}), Scope::MessageBody);
        assert!(!t.matches(&json!({"k": null})).unwrap());
        assert!(t.matches(&json!({"k": 1})).unwrap());
        let f = policy(json!({"k": [{"exists": false}]}), Scope::MessageAttributes);
        assert!(!f.matches(&json!({})).unwrap());
        assert!(f.matches(&attrs(&[("other", "String", "x")])).unwrap());
    }

    #[test]
    fn body_scope_nests_and_needs_an_object_body() {
        let p = policy(
            json!({"patient": {"age": [{"numeric": [">", 60]}]}}),
            Scope::MessageBody,
        );
        assert!(p.matches(&json!({"patient": {"age": 70}})).unwrap());
        assert!(!p.matches(&json!("not an object")).unwrap());
    }

    #[test]
    fn limits_and_sns_specific_rejections() {
        let six = json!({"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]});
        assert!(FilterPolicy::parse(&six, Scope::MessageAttributes)
            .unwrap_err()
            .message
            .contains("more than 5 keys"));
        let wide = json!({"a": (0..151).map(|i| json!(i)).collect::<Vec<_>>()});
        assert!(FilterPolicy::parse(&wide, Scope::MessageAttributes)
            .unwrap_err()
            .message
            .contains("too complex"));
        // SNS's documented and AWS-recorded counts.
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            combinations(
                &m(json!({"key_a": [1, 2, 3], "key_b": [1], "key_c": [1, 2]})),
                1,
                1
            ),
            6
        );
        assert_eq!(
            combinations(
                &m(
                    json!({"key_a": {"key_b": {"key_c": [1, 2, 3, 4]}}, "key_d": {"key_e": [1, 2, 3]}})
                ),
                1,
                1
            ),
            72
        );
        assert_eq!(
            combinations(
                &m(json!({"source": [1, 2, 3, 4], "$or": [
                {"metricName": [1, 2, 3, 4, 5, 6]},
                {"metricType": [1, 2, 3, 4], "$or": [{"metricId": [1, 2, 3, 4]}, {"spaceId": [1, 2, 3, 4]}]}]})),
                1,
                1
            ),
            152
        );
        let nested = json!({"a": {"b": ["x"]}});
        assert!(FilterPolicy::parse(&nested, Scope::MessageAttributes)
            .unwrap_err()
            .message
            .contains("nested"));
        assert!(FilterPolicy::parse(&nested, Scope::MessageBody).is_ok());
        let suffix_but = json!({"a": [{"anything-but": {"suffix": "x"}}]});
        assert!(FilterPolicy::parse(&suffix_but, Scope::MessageBody)
            .unwrap_err()
            .message
            .contains("Unsupported anything-but pattern: suffix"));
        let four = json!({"a": [{"wildcard": "*a*b*c*"}]});
        let e = FilterPolicy::parse(&four, Scope::MessageAttributes).unwrap_err();
        assert_eq!(e.pointer, "/a/0/wildcard");
        assert!(e.message.contains("at most 3 wildcard characters"), "{e:?}");
        let complex =
            json!({"a": [{"wildcard": "*a*b*c"}, {"wildcard": "*d*e*f"}, {"wildcard": "*g*h"}]});
        assert!(FilterPolicy::parse(&complex, Scope::MessageAttributes)
            .unwrap_err()
            .message
            .contains("Rule is too complex"));
        let wildcard_but = json!({"a": [{"anything-but": {"wildcard": "x*"}}]});
        assert!(FilterPolicy::parse(&wildcard_but, Scope::MessageBody)
            .unwrap_err()
            .message
            .contains("Unsupported anything-but pattern: wildcard"));
    }

    #[test]
    fn wildcards_match_strings_in_both_scopes() {
        let p = policy(
            json!({"sport": [{"wildcard": "*ball"}]}),
            Scope::MessageAttributes,
        );
        let attr = |v: &str| json!({"sport": {"Type": "String", "Value": v}});
        assert!(p.matches(&attr("baseball")).unwrap());
        assert!(p.matches(&attr("ball")).unwrap());
        assert!(!p.matches(&attr("rugby")).unwrap());
        let arr = json!({"sport": {"Type": "String.Array", "Value": "[\"rugby\", \"football\"]"}});
        assert!(p.matches(&arr).unwrap());
        let p = policy(
            json!({"store": {"name": [{"wildcard": "ex*corp"}]}}),
            Scope::MessageBody,
        );
        assert!(p
            .matches(&json!({"store": {"name": "example_corp"}}))
            .unwrap());
        assert!(!p
            .matches(&json!({"store": {"name": "example_inc"}}))
            .unwrap());
        assert!(!p.matches(&json!({"store": {"name": 5}})).unwrap());
    }

    #[test]
    fn malformed_attributes_are_errors_not_mismatches() {
        let p = policy(json!({"k": ["v"]}), Scope::MessageAttributes);
        assert!(p.matches(&json!({"k": "v"})).is_err());
        assert!(p
            .matches(&json!({"k": {"Type": "Number", "Value": "abc"}}))
            .is_err());
        assert!(p
            .matches(&json!({"k": {"Type": "Nope", "Value": "v"}}))
            .is_err());
    }
}
