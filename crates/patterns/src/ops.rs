//! The leaf matchers of the pattern language and their compilation.
//!
//! A condition on a field is an array of matchers (OR). Each matcher is a
//! literal (`"x"`, `5`, `true`, `null`) or a one-key operator object
//! (`prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `anything-but`,
//! `numeric`, `exists`, `cidr`). Rules follow AWS's reference matcher,
//! event-ruler; each non-obvious one cites its source.

use std::net::IpAddr;

use serde_json::Value;

use crate::error::{PatternError, Pointer};

/// Which service's rules apply (they differ in a few operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// EventBridge event patterns.
    EventBridge,
    /// SNS subscription filter policies.
    Sns,
}

/// One scalar value of an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Leaf<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Null,
}

impl<'a> Leaf<'a> {
    pub(crate) fn of(v: &'a Value) -> Option<Self> {
        Some(match v {
            Value::String(s) => Leaf::Str(s),
            // Numbers compare by value: 5, 5.0 and 5e0 are equal (AWS matches `[300]` to `300.0`).
            Value::Number(n) => Leaf::Num(n.as_f64()?),
            Value::Bool(b) => Leaf::Bool(*b),
            Value::Null => Leaf::Null,
            _ => return None,
        })
    }
}

/// A literal, as a hashable key for the exact-match index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum LitKey {
    Str(Box<str>),
    Num(u64),
    Bool(bool),
    Null,
}

/// Bits of a number with -0.0 folded into 0.0, so equal values hash equally.
pub(crate) fn num_key(n: f64) -> u64 {
    if n == 0.0 {
        0f64.to_bits()
    } else {
        n.to_bits()
    }
}

/// A numeric bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

/// One matcher.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Str(Box<str>),
    Num(f64),
    Bool(bool),
    Null,
    Prefix(Box<str>),
    PrefixIc(Box<str>),
    Suffix(Box<str>),
    SuffixIc(Box<str>),
    EqIc(Box<str>),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric {
        lower: Option<Bound>,
        upper: Option<Bound>,
    },
    /// `exists: true`; for SNS a null value does not count as existing.
    Exists {
        null_counts: bool,
    },
    Cidr(Cidr),
}

impl Op {
    /// The literal this op matches exactly, if it is a plain literal.
    pub(crate) fn literal(&self) -> Option<LitKey> {
        Some(match self {
            Op::Str(s) => LitKey::Str(s.clone()),
            Op::Num(n) => LitKey::Num(num_key(*n)),
            Op::Bool(b) => LitKey::Bool(*b),
            Op::Null => LitKey::Null,
            _ => return None,
        })
    }

    pub(crate) fn test(&self, leaf: &Leaf<'_>) -> bool {
        match (self, leaf) {
            (Op::Str(p), Leaf::Str(s)) => **p == **s,
            (Op::Num(p), Leaf::Num(n)) => p == n,
            (Op::Bool(p), Leaf::Bool(b)) => p == b,
            (Op::Null, Leaf::Null) => true,
            (Op::Prefix(p), Leaf::Str(s)) => s.starts_with(&**p),
            (Op::Suffix(p), Leaf::Str(s)) => s.ends_with(&**p),
            (Op::PrefixIc(p), Leaf::Str(s)) => ic_prefix_len(p, s).is_some(),
            (Op::SuffixIc(p), Leaf::Str(s)) => ic_suffix(p, s),
            (Op::EqIc(p), Leaf::Str(s)) => ic_prefix_len(p, s) == Some(s.len()),
            (Op::Wildcard(w), Leaf::Str(s)) => w.matches(s),
            (Op::AnythingBut(a), leaf) => a.test(leaf),
            (Op::Numeric { lower, upper }, Leaf::Num(n)) => {
                lower.is_none_or(|b| {
                    if b.inclusive {
                        *n >= b.value
                    } else {
                        *n > b.value
                    }
                }) && upper.is_none_or(|b| {
                    if b.inclusive {
                        *n <= b.value
                    } else {
                        *n < b.value
                    }
                })
            }
            (Op::Exists { null_counts }, leaf) => *null_counts || *leaf != Leaf::Null,
            (Op::Cidr(c), Leaf::Str(s)) => c.contains(s),
            _ => false,
        }
    }
}

/// Case-insensitive matching as event-ruler does it: each character of the
/// pattern matches its lower- or upper-case form in the value (so `straße`
/// matches `STRASSE`), characters outside the Basic Multilingual Plane only
/// themselves (event-ruler folds UTF-16 code units one at a time).
/// Returns the byte length of the value prefix the pattern consumed.
fn ic_prefix_len(pattern: &str, value: &str) -> Option<usize> {
    let mut pos = 0;
    for c in pattern.chars() {
        let rest = &value[pos..];
        let step = fold_step(c, rest, |rest, form| rest.starts_with(form))?;
        pos += step;
    }
    Some(pos)
}

fn ic_suffix(pattern: &str, value: &str) -> bool {
    let mut end = value.len();
    for c in pattern.chars().rev() {
        let rest = &value[..end];
        match fold_step(c, rest, |rest, form| rest.ends_with(form)) {
            Some(step) => end -= step,
            None => return false,
        }
    }
    true
}

/// The byte length matched by character `c` (itself, its lower or upper case form) in `rest`.
fn fold_step(c: char, rest: &str, fits: impl Fn(&str, &str) -> bool) -> Option<usize> {
    let mut buf = [0u8; 4];
    let own = c.encode_utf8(&mut buf);
    if fits(rest, own) {
        return Some(own.len());
    }
    if (c as u32) > 0xFFFF {
        return None;
    }
    let lower: String = c.to_lowercase().collect();
    if fits(rest, &lower) {
        return Some(lower.len());
    }
    let upper: String = c.to_uppercase().collect();
    if fits(rest, &upper) {
        return Some(upper.len());
    }
    None
}

/// A compiled wildcard: literal segments between `*`s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wildcard {
    segments: Vec<Box<str>>,
}

impl Wildcard {
    /// Parses `\*` (a literal star), `\\` (a literal backslash) and `*`.
    /// Any other escape, a trailing `\` and `**` are errors (event-ruler's
    /// WildcardParser; positions are 1-based).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut segments = vec![String::new()];
        let mut chars = text.chars().enumerate();
        let mut prev_star = false;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '\\'))) => {
                        // The escaped character is literal.
                        if let Some(last) = segments.last_mut() {
                            last.push(e);
                        }
                        prev_star = false;
                    }
                    _ => return Err(format!("Invalid escape character at pos {}", i + 1)),
                },
                '*' => {
                    if prev_star {
                        return Err(format!("Consecutive wildcard characters at pos {i}"));
                    }
                    segments.push(String::new());
                    prev_star = true;
                }
                other => {
                    if let Some(last) = segments.last_mut() {
                        last.push(other);
                    }
                    prev_star = false;
                }
            }
        }
        // A leading or trailing `*` leaves an empty first or last segment.
        Ok(Self {
            segments: segments.into_iter().map(String::into_boxed_str).collect(),
        })
    }

    /// Glob match with `*` only: anchored first and last segments, the
    /// middle ones found greedily left to right (linear in the value for a
    /// fixed pattern).
    pub(crate) fn matches(&self, value: &str) -> bool {
        let n = self.segments.len();
        if n == 1 {
            return *self.segments[0] == *value;
        }
        let first = &self.segments[0];
        let last = &self.segments[n - 1];
        if !value.starts_with(&**first) || !value.ends_with(&**last) {
            return false;
        }
        if first.len() + last.len() > value.len() {
            return false;
        }
        let mut rest = &value[first.len()..value.len() - last.len()];
        for seg in &self.segments[1..n - 1] {
            match rest.find(&**seg) {
                Some(i) => rest = &rest[i + seg.len()..],
                None => return false,
            }
        }
        true
    }
}

/// `anything-but`: matches a present value that is not excluded. A
/// string-typed exclusion lets every non-string through (numbers, booleans,
/// null), a numeric one every non-number (event-ruler; AWS
/// `content_anything_prefix_int_value`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnythingBut {
    Strs(Vec<Box<str>>),
    Nums(Vec<f64>),
    Prefix(Vec<Box<str>>),
    Suffix(Vec<Box<str>>),
    EqIc(Vec<Box<str>>),
    Wildcard(Vec<Wildcard>),
}

impl AnythingBut {
    fn test(&self, leaf: &Leaf<'_>) -> bool {
        match (self, leaf) {
            (AnythingBut::Nums(ns), Leaf::Num(n)) => !ns.contains(n),
            (AnythingBut::Nums(_), _) => true,
            (_, Leaf::Str(s)) => match self {
                AnythingBut::Strs(v) => !v.iter().any(|x| **x == **s),
                AnythingBut::Prefix(v) => !v.iter().any(|x| s.starts_with(&**x)),
                AnythingBut::Suffix(v) => !v.iter().any(|x| s.ends_with(&**x)),
                AnythingBut::EqIc(v) => !v.iter().any(|x| ic_prefix_len(x, s) == Some(s.len())),
                AnythingBut::Wildcard(v) => !v.iter().any(|w| w.matches(s)),
                AnythingBut::Nums(_) => true,
            },
            _ => true,
        }
    }
}

/// An IP range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cidr {
    v6: bool,
    lo: u128,
    hi: u128,
}

impl Cidr {
    /// Parses `a.b.c.d/m` (m < 32) or `x:y::z/m` (m < 128), as event-ruler does.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split('/');
        let (Some(addr), Some(mask), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("Malformed CIDR, one '/' required".into());
        };
        let bits: u32 = mask
            .parse()
            .map_err(|_| "Malformed CIDR, mask bits must be an integer".to_string())?;
        let (v6, value, width) = parse_ip_strict(addr)?;
        if bits >= width {
            return Err(format!(
                "{} mask bits must be < {width}",
                if v6 { "IPv6" } else { "IPv4" }
            ));
        }
        let host = width - bits;
        let mask = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        Ok(Self {
            v6,
            lo: value & !mask,
            hi: value | mask,
        })
    }

    fn contains(&self, s: &str) -> bool {
        let Ok(ip) = s.parse::<IpAddr>() else {
            return false;
        };
        let (v6, v) = match ip {
            IpAddr::V4(a) => (false, u128::from(u32::from(a))),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => (false, u128::from(u32::from(v4))),
                None => (true, u128::from(a)),
            },
        };
        v6 == self.v6 && (self.lo..=self.hi).contains(&v)
    }
}

/// Returns (is IPv6, value, bit width).
fn parse_ip_strict(addr: &str) -> Result<(bool, u128, u32), String> {
    let looks_v4 = addr.split('.').count() == 4
        && addr
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if looks_v4 {
        let mut v: u32 = 0;
        for p in addr.split('.') {
            let octet: u32 = p.parse().unwrap_or(256);
            if octet > 255 {
                return Err(format!("Invalid IP address: {addr}"));
            }
            v = (v << 8) | octet;
        }
        return Ok((false, u128::from(v), 32));
    }
    let looks_v6 = addr.contains(':') && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    if looks_v6 {
        return match addr.parse::<std::net::Ipv6Addr>() {
            Ok(a) => Ok((true, u128::from(a), 128)),
            Err(_) => Err(format!("Invalid IP address: {addr}")),
        };
    }
    Err(format!("Nonstandard IP address: {addr}"))
}

/// The compiled form of a field's matcher array.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Condition {
    pub ops: Vec<Op>,
    /// `exists: false` is among the alternatives: absence satisfies it.
    pub absent_ok: bool,
}

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
        "wildcard" if dialect == Dialect::EventBridge => {
            let s = string(value, at, "wildcard")?;
            Op::Wildcard(Wildcard::parse(s).map_err(|e| PatternError::new(at, e))?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_event_ruler_escaping() {
        let w = Wildcard::parse("Simple*Service").unwrap();
        assert!(w.matches("SimpleQueueService"));
        assert!(w.matches("SimpleService"));
        assert!(!w.matches("simpleService"));
        let w = Wildcard::parse(r"a\*b").unwrap();
        assert!(w.matches("a*b"));
        assert!(!w.matches("axb"));
        let w = Wildcard::parse(r"a\\b*").unwrap();
        assert!(w.matches(r"a\bc"));
        assert_eq!(
            Wildcard::parse("a**b").unwrap_err(),
            "Consecutive wildcard characters at pos 2"
        );
        assert_eq!(
            Wildcard::parse(r"a\b").unwrap_err(),
            "Invalid escape character at pos 2"
        );
        assert!(Wildcard::parse("a\\").is_err());
        assert!(Wildcard::parse("*").unwrap().matches(""));
        assert!(Wildcard::parse("").unwrap().matches(""));
        assert!(!Wildcard::parse("").unwrap().matches("x"));
        // Overlapping first/last segments must not double-count characters.
        assert!(!Wildcard::parse("ab*ba").unwrap().matches("aba"));
        assert!(Wildcard::parse("ab*ba").unwrap().matches("abba"));
        assert!(Wildcard::parse("*/bin/*.jar")
            .unwrap()
            .matches("/usr/bin/x.jar"));
        assert!(!Wildcard::parse("*/bin/*.jar")
            .unwrap()
            .matches("/usr/lib/x.jar"));
    }

    #[test]
    fn case_folding_is_per_character_like_event_ruler() {
        assert_eq!(ic_prefix_len("alice", "ALICE"), Some(5));
        assert_eq!(ic_prefix_len("straße", "STRASSE"), Some(7));
        assert_eq!(ic_prefix_len("ß", "ss"), None);
        assert!(ic_suffix(".PNG", "cat.png"));
        assert!(!ic_suffix(".PNG", "cat.jpg"));
        // Outside the BMP only the character itself matches.
        assert_eq!(ic_prefix_len("𐐀", "𐐨"), None);
    }

    #[test]
    fn cidr_ranges_and_their_errors() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        assert!(c.contains("10.0.0.255"));
        assert!(!c.contains("10.0.1.0"));
        assert!(!c.contains("10.0.0.1:80"));
        assert!(!c.contains("not-an-ip"));
        assert!(Cidr::parse("10.0.0.77/24").unwrap().contains("10.0.0.1"));
        let c6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c6.contains("2001:0DB8::1"));
        assert!(!c6.contains("2001:db9::1"));
        assert!(!c6.contains("10.0.0.1"));
        assert_eq!(
            Cidr::parse("10.0.0.0").unwrap_err(),
            "Malformed CIDR, one '/' required"
        );
        assert_eq!(
            Cidr::parse("10.0.0.0/x").unwrap_err(),
            "Malformed CIDR, mask bits must be an integer"
        );
        assert_eq!(
            Cidr::parse("xx.11.xx/8").unwrap_err(),
            "Nonstandard IP address: xx.11.xx"
        );
        assert_eq!(
            Cidr::parse("300.0.0.0/8").unwrap_err(),
            "Invalid IP address: 300.0.0.0"
        );
        assert!(Cidr::parse("10.0.0.0/32").is_err());
        assert!(Cidr::parse("::/128").is_err());
    }
}
