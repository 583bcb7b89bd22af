//! Compiling a field's matcher array, with event-ruler's error messages.

use serde_json::Value;

use super::{AnythingBut, Bound, Cidr, Dialect, Op, Wildcard};
use crate::error::{PatternError, Pointer};

/// The compiled form of a field's matcher array.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Condition {
    pub ops: Vec<Op>,
    /// `exists: false` is among the alternatives: absence satisfies it.
    pub absent_ok: bool,
}

/// Most `*` in one SNS wildcard value (SNS's string value matching).
pub(crate) const MAX_SNS_WILDCARDS: usize = 3;

const RESERVED: &[&str] = &[
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
];

/// Is `key` an operator name (which may not be a field name inside `$or`)?
pub(crate) fn is_reserved(key: &str) -> bool {
    RESERVED.contains(&key)
}

/// Compiles a field's array of matchers.
pub(crate) fn compile_condition(
    items: &[Value],
    at: &Pointer<'_>,
    dialect: Dialect,
) -> Result<Condition, PatternError> {
    if items.is_empty() {
        return Err(PatternError::new(at, "Empty arrays are not allowed"));
    }
    let mut cond = Condition::default();
    for (i, item) in items.iter().enumerate() {
        let at = at.index(i);
        match item {
            Value::String(s) => cond.ops.push(Op::Str(s.as_str().into())),
            Value::Number(n) => cond.ops.push(Op::Num(number(n, &at)?)),
            Value::Bool(b) => cond.ops.push(Op::Bool(*b)),
            Value::Null => cond.ops.push(Op::Null),
            Value::Object(m) => {
                let mut it = m.iter();
                let (Some((key, value)), None) = (it.next(), it.next()) else {
                    return Err(PatternError::new(
                        &at,
                        if m.is_empty() {
                            "Match expression name not found"
                        } else {
                            "Only one key allowed in match expression"
                        },
                    ));
                };
                let at = at.key(key);
                match compile_op(key, value, &at, dialect)? {
                    Some(op) => cond.ops.push(op),
                    None => cond.absent_ok = true,
                }
            }
            Value::Array(_) => {
                return Err(PatternError::new(
                    &at,
                    "Match value must be String, number, true, false, or null",
                ))
            }
        }
    }
    Ok(cond)
}

fn number(n: &serde_json::Number, at: &Pointer<'_>) -> Result<f64, PatternError> {
    let f = n
        .as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| PatternError::new(at, format!("Cannot compare number : {n}")))?;
    // Integers beyond 2^53 cannot be compared exactly as doubles (event-ruler rejects them).
    let exact = match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i.unsigned_abs() <= 1 << 53,
        (None, Some(u)) => u <= 1 << 53,
        _ => true,
    };
    if !exact {
        return Err(PatternError::new(
            at,
            format!("Cannot compare number : {n}"),
        ));
    }
    Ok(f)
}

fn string<'v>(value: &'v Value, at: &Pointer<'_>, what: &str) -> Result<&'v str, PatternError> {
    value
        .as_str()
        .ok_or_else(|| PatternError::new(at, format!("{what} match pattern must be a string")))
}

/// Compiles one operator; `None` stands for `exists: false`.
fn compile_op(
    key: &str,
    value: &Value,
    at: &Pointer<'_>,
    dialect: Dialect,
) -> Result<Option<Op>, PatternError> {
    let op = match key {
        "prefix" | "suffix" => {
            let is_prefix = key == "prefix";
            let what = if dialect == Dialect::Sns {
                "prefix"
            } else {
                key
            };
            match value {
                Value::Object(m) if m.len() == 1 && m.contains_key("equals-ignore-case") => {
                    let s = string(
                        &m["equals-ignore-case"],
                        &at.key("equals-ignore-case"),
                        what,
                    )?
                    .into();
                    if is_prefix {
                        Op::PrefixIc(s)
                    } else {
                        Op::SuffixIc(s)
                    }
                }
                Value::Object(m) => {
                    let inner = m.keys().next().map(String::as_str).unwrap_or("");
                    return Err(PatternError::new(
                        at,
                        format!("Unsupported {key} pattern: {inner}"),
                    ));
                }
                other => {
                    let s = string(other, at, what)?.into();
                    if is_prefix {
                        Op::Prefix(s)
                    } else {
                        Op::Suffix(s)
                    }
                }
            }
        }
        "equals-ignore-case" => Op::EqIc(string(value, at, "equals-ignore-case")?.into()),
        "exactly" if dialect == Dialect::EventBridge => Op::Str(string(value, at, "exact")?.into()),
        "wildcard" => {
            let s = string(value, at, "wildcard")?;
            let w = Wildcard::parse(s).map_err(|e| PatternError::new(at, e))?;
            if dialect == Dialect::Sns && w.stars() > MAX_SNS_WILDCARDS {
                return Err(PatternError::new(
                    at,
                    format!("A wildcard value may have at most {MAX_SNS_WILDCARDS} wildcard characters; it has {}", w.stars()),
                ));
            }
            Op::Wildcard(w)
        }
        "anything-but" => Op::AnythingBut(compile_anything_but(value, at, dialect)?),
        "numeric" => compile_numeric(value, at)?,
        "exists" => match value {
            Value::Bool(true) => Op::Exists {
                null_counts: dialect == Dialect::EventBridge,
            },
            Value::Bool(false) => return Ok(None),
            _ => {
                return Err(PatternError::new(
                    at,
                    "exists match pattern must be either true or false.",
                ))
            }
        },
        "cidr" => {
            let s = string(value, at, "prefix")?;
            Op::Cidr(Cidr::parse(s).map_err(|e| PatternError::new(at, e))?)
        }
        other => {
            return Err(PatternError::new(
                at,
                format!("Unrecognized match type {other}"),
            ));
        }
    };
    Ok(Some(op))
}

fn compile_anything_but(
    value: &Value,
    at: &Pointer<'_>,
    dialect: Dialect,
) -> Result<AnythingBut, PatternError> {
    let not_allowed = "Value of anything-but must be an array or single string/number value.";
    match value {
        Value::String(s) => Ok(AnythingBut::Strs(vec![s.as_str().into()])),
        Value::Number(n) => Ok(AnythingBut::Nums(vec![number(n, at)?])),
        Value::Array(items) => {
            let mixed = "Inside anything but list, either all values are number or string, mixed type is not supported";
            if items.is_empty() {
                return Err(PatternError::new(at, mixed));
            }
            if items.iter().all(Value::is_string) {
                Ok(AnythingBut::Strs(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(Into::into)
                        .collect(),
                ))
            } else if items.iter().all(Value::is_number) {
                let mut nums = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    if let Value::Number(n) = v {
                        nums.push(number(n, &at.index(i))?);
                    }
                }
                Ok(AnythingBut::Nums(nums))
            } else if let Some((i, bad)) = items
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_string() && !v.is_number())
            {
                let kind = match bad {
                    Value::Null => "null",
                    Value::Bool(_) => "boolean",
                    _ => "start",
                };
                Err(PatternError::new(
                    &at.index(i),
                    format!("Inside anything but list, {kind} is not supported."),
                ))
            } else {
                Err(PatternError::new(at, mixed))
            }
        }
        Value::Object(m) => {
            let mut it = m.iter();
            let (Some((key, inner)), None) = (it.next(), it.next()) else {
                return Err(PatternError::new(
                    at,
                    if m.is_empty() {
                        not_allowed
                    } else {
                        "Too many elements in numeric expression"
                    },
                ));
            };
            let allowed = match dialect {
                Dialect::EventBridge => matches!(
                    key.as_str(),
                    "prefix" | "suffix" | "equals-ignore-case" | "wildcard"
                ),
                // SNS documents only `anything-but: {prefix}` (and rejects suffix).
                Dialect::Sns => key == "prefix",
            };
            if !allowed {
                return Err(PatternError::new(
                    at,
                    format!("Unsupported anything-but pattern: {key}"),
                ));
            }
            let at = at.key(key);
            let what = if key == "prefix" || key == "suffix" {
                if dialect == Dialect::Sns {
                    "prefix".to_string()
                } else {
                    "prefix/suffix".to_string()
                }
            } else {
                key.clone()
            };
            let strings: Vec<&str> = match inner {
                Value::String(s) => vec![s.as_str()],
                Value::Array(list) if !list.is_empty() => {
                    let mut out = Vec::with_capacity(list.len());
                    for (i, v) in list.iter().enumerate() {
                        out.push(v.as_str().ok_or_else(|| {
                            PatternError::new(
                                &at.index(i),
                                format!("{what} match pattern must be a string"),
                            )
                        })?);
                    }
                    out
                }
                Value::Object(_) => return Err(PatternError::new(&at, not_allowed)),
                _ => {
                    return Err(PatternError::new(
                        &at,
                        format!("{what} match pattern must be a string"),
                    ))
                }
            };
            if (key == "prefix" || key == "suffix") && strings.iter().any(|s| s.is_empty()) {
                return Err(PatternError::new(&at, "Null prefix/suffix not allowed"));
            }
            let boxed = || strings.iter().map(|s| Box::<str>::from(*s)).collect();
            Ok(match key.as_str() {
                "prefix" => AnythingBut::Prefix(boxed()),
                "suffix" => AnythingBut::Suffix(boxed()),
                "equals-ignore-case" => AnythingBut::EqIc(boxed()),
                _ => {
                    let mut ws = Vec::with_capacity(strings.len());
                    for s in &strings {
                        ws.push(Wildcard::parse(s).map_err(|e| PatternError::new(&at, e))?);
                    }
                    AnythingBut::Wildcard(ws)
                }
            })
        }
        _ => Err(PatternError::new(at, not_allowed)),
    }
}

fn compile_numeric(value: &Value, at: &Pointer<'_>) -> Result<Op, PatternError> {
    let Value::Array(items) = value else {
        return Err(PatternError::new(at, "Value of numeric must be an array."));
    };
    let operator = |i: usize| -> Result<&str, PatternError> {
        match items.get(i) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(other) => Err(PatternError::new(
                &at.index(i),
                format!("Invalid member in numeric match: {other}"),
            )),
            None => Err(PatternError::new(at, "Invalid member in numeric match: ]")),
        }
    };
    let operand = |i: usize, op: &str| -> Result<f64, PatternError> {
        let name = if op == "=" { "equals" } else { op };
        match items.get(i) {
            Some(Value::Number(n)) => number(n, &at.index(i)),
            Some(_) | None => Err(PatternError::new(
                &at.index(i),
                format!("Value of {name} must be numeric"),
            )),
        }
    };
    let first = operator(0)?;
    let value1 = match first {
        "=" | "<" | "<=" | ">" | ">=" => operand(1, first)?,
        other => {
            return Err(PatternError::new(
                &at.index(0),
                format!("Unrecognized numeric range operator: {other}"),
            ))
        }
    };
    if items.len() == 2 {
        let b = |inclusive| {
            Some(Bound {
                value: value1,
                inclusive,
            })
        };
        return Ok(match first {
            "=" => Op::Numeric {
                lower: b(true),
                upper: b(true),
            },
            "<" => Op::Numeric {
                lower: None,
                upper: b(false),
            },
            "<=" => Op::Numeric {
                lower: None,
                upper: b(true),
            },
            ">" => Op::Numeric {
                lower: b(false),
                upper: None,
            },
            _ => Op::Numeric {
                lower: b(true),
                upper: None,
            },
        });
    }
    if !matches!(first, ">" | ">=") {
        return Err(PatternError::new(
            at,
            "Too many elements in numeric expression",
        ));
    }
    let second = match items.get(2) {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(PatternError::new(
                &at.index(2),
                format!("Bad value in numeric range: {other}"),
            ))
        }
        None => return Err(PatternError::new(at, "Invalid member in numeric match: ]")),
    };
    if !matches!(second, "<" | "<=") {
        return Err(PatternError::new(
            &at.index(2),
            format!("Bad numeric range operator: {second}"),
        ));
    }
    let value2 = operand(3, second)?;
    if items.len() > 4 {
        return Err(PatternError::new(
            at,
            "Too many terms in numeric range expression",
        ));
    }
    if value1 >= value2 {
        return Err(PatternError::new(at, "Bottom must be less than top"));
    }
    Ok(Op::Numeric {
        lower: Some(Bound {
            value: value1,
            inclusive: first == ">=",
        }),
        upper: Some(Bound {
            value: value2,
            inclusive: second == "<=",
        }),
    })
}
