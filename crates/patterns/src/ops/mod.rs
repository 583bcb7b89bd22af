//! The leaf matchers of the pattern language and their compilation.
//!
//! A condition on a field is an array of matchers (OR). Each matcher is a
//! literal (`"x"`, `5`, `true`, `null`) or a one-key operator object
//! (`prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `anything-but`,
//! `numeric`, `exists`, `cidr`). Rules follow AWS's reference matcher,
//! event-ruler; each non-obvious one cites its source.

use serde_json::Value;

mod cidr;
mod compile;
mod wildcard;

pub(crate) use cidr::Cidr;
pub(crate) use compile::{compile_condition, is_reserved, Condition};
pub(crate) use wildcard::Wildcard;

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

#[cfg(test)]
mod tests;
