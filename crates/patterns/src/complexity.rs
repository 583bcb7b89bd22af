//! How complex a rule's wildcards are, as AWS's event-ruler measures it, so
//! a rule that EventBridge would refuse as too complex is refused here too.
//!
//! event-ruler builds one byte automaton per field of a rule and measures
//! the most states that can lead to a wildcard match which an input can hold
//! at once; EventBridge refuses a rule above 10 (decision 0005 gives the
//! sources). Here one wildcard value's figure is the most of its prefixes
//! (over the quoted value, `"` included, as event-ruler stores strings) that
//! one input can match at the same time, found by walking the subsets of
//! its positions; the values of one field add up, and the rule's figure is
//! that of its worst field. On every pattern in the unit tests this equals
//! event-ruler's own figure (`MachineComplexityEvaluator`).

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use crate::error::{PatternError, Pointer};
use crate::ops::Wildcard;

/// The most complexity EventBridge accepts in one rule.
pub const MAX_COMPLEXITY: usize = 10;

/// EventBridge's reason for refusing a rule over [`MAX_COMPLEXITY`].
pub const TOO_COMPLEX: &str = "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character";

/// Position sets explored per value before giving up (as too complex).
const MAX_STATES: usize = 20_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Lit(char),
    Star,
}

/// The figure of one wildcard value, at most `cap + 1`.
pub(crate) fn of_wildcard(w: &Wildcard, cap: usize) -> usize {
    let mut tokens = vec![Token::Lit('"')];
    for (i, seg) in w.segments().iter().enumerate() {
        if i > 0 {
            tokens.push(Token::Star);
        }
        tokens.extend(seg.chars().map(Token::Lit));
    }
    tokens.push(Token::Lit('"'));
    let n = tokens.len();
    // Position i: the first i tokens are matched. The tokens' characters,
    // and one character none of them is, cover every input.
    let mut alphabet: Vec<Option<char>> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Lit(c) => Some(Some(*c)),
            Token::Star => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    alphabet.push(None);
    let closure = |set: &mut Vec<usize>| {
        // A star may match nothing: the position after it is reached too.
        let mut i = 0;
        while i < set.len() {
            let p = set[i];
            if p < n && tokens[p] == Token::Star && !set.contains(&(p + 1)) {
                set.push(p + 1);
            }
            i += 1;
        }
        set.sort_unstable();
        set.dedup();
    };
    let mut start = vec![0];
    closure(&mut start);
    let mut seen: HashSet<Vec<usize>> = HashSet::from([start.clone()]);
    let mut queue = VecDeque::from([start]);
    let mut worst = 0;
    while let Some(set) = queue.pop_front() {
        worst = worst.max(set.iter().filter(|&&p| p > 0).count());
        if worst > cap || seen.len() > MAX_STATES {
            return cap + 1;
        }
        for c in &alphabet {
            let mut next = Vec::with_capacity(set.len() + 1);
            for &p in &set {
                // A star position absorbs any character.
                if p > 0 && tokens[p - 1] == Token::Star {
                    next.push(p);
                }
                if p < n {
                    if let (Token::Lit(l), Some(c)) = (tokens[p], c) {
                        if l == *c {
                            next.push(p + 1);
                        }
                    }
                }
            }
            if next.is_empty() {
                continue;
            }
            closure(&mut next);
            if seen.insert(next.clone()) {
                queue.push_back(next);
            }
        }
    }
    worst
}

/// Refuses a pattern (already compiled, so well formed) whose wildcards are
/// too complex.
pub(crate) fn check(pattern: &Value) -> Result<(), PatternError> {
    let mut fields: HashMap<String, Vec<Wildcard>> = HashMap::new();
    if let Value::Object(map) = pattern {
        collect(map, "", &mut fields);
    }
    for values in fields.values() {
        let mut total = 0;
        for w in values {
            total += of_wildcard(w, MAX_COMPLEXITY);
            if total > MAX_COMPLEXITY {
                return Err(PatternError::new(&Pointer::Root, TOO_COMPLEX));
            }
        }
    }
    Ok(())
}

fn collect(map: &Map<String, Value>, prefix: &str, out: &mut HashMap<String, Vec<Wildcard>>) {
    for (key, value) in map {
        if key == "$or" {
            for branch in value.as_array().into_iter().flatten() {
                if let Value::Object(b) = branch {
                    collect(b, prefix, out);
                }
            }
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(obj) => collect(obj, &path, out),
            Value::Array(items) => {
                for item in items {
                    let Value::Object(op) = item else { continue };
                    let texts: Vec<&str> = match (op.get("wildcard"), op.get("anything-but")) {
                        (Some(Value::String(s)), _) => vec![s.as_str()],
                        (_, Some(Value::Object(ab))) => match ab.get("wildcard") {
                            Some(Value::String(s)) => vec![s.as_str()],
                            Some(Value::Array(list)) => {
                                list.iter().filter_map(Value::as_str).collect()
                            }
                            _ => vec![],
                        },
                        _ => vec![],
                    };
                    for text in texts {
                        if let Ok(w) = Wildcard::parse(text) {
                            out.entry(path.clone()).or_default().push(w);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn figure(pattern: &Value) -> usize {
        let mut fields = HashMap::new();
        collect(pattern.as_object().unwrap(), "", &mut fields);
        fields
            .values()
            .map(|ws| ws.iter().map(|w| of_wildcard(w, 1000)).sum::<usize>())
            .max()
            .unwrap_or(0)
    }

    /// Figures computed by event-ruler 1.8.1's MachineComplexityEvaluator
    /// (Machine.addRule, then evaluateComplexity) for the same patterns.
    #[test]
    fn figures_equal_event_rulers() {
        let w = |s: &str| json!({"wildcard": s});
        let table: Vec<(Value, usize)> = vec![
            (json!({"k": [w("*")]}), 2),
            (json!({"k": [w("a*")]}), 2),
            (json!({"k": [w("*a")]}), 2),
            (json!({"k": [w("abc")]}), 1),
            (json!({"k": [w("*:*")]}), 3),
            (json!({"k": [w("*:*:*")]}), 5),
            (json!({"k": [w("*:*:*:*")]}), 7),
            (json!({"k": [w("*ab*")]}), 3),
            (json!({"k": [w("*a*")]}), 3),
            (json!({"k": [w("*a*a*")]}), 5),
            (json!({"k": [w("*ab*ab*")]}), 5),
            (json!({"k": [w("*ab*cd*")]}), 4),
            (json!({"k": [w("x*a*a*")]}), 5),
            (json!({"k": [w("*a*b*")]}), 4),
            (json!({"k": [w("*aa*")]}), 4),
            (json!({"k": [w("*aa*aa*")]}), 7),
            (json!({"k": [w("*ball*")]}), 3),
            (json!({"k": [w("a*b*c*d")]}), 4),
            (json!({"k": [w("*a*b*c*")]}), 5),
            (json!({"EventBusArn": [w("*:*:*:*:*:event-bus/*")]}), 11),
            (json!({"EventBusArn": [w("*:*:*:*:event-bus/*")]}), 9),
            (json!({"EventBusArn": [w("*:*:*:event-bus/*")]}), 7),
            (
                json!({"FileName": [w("/Users/*/dir/dir/dir/dir/dir/doc.txt")]}),
                7,
            ),
            (
                json!({"k": [w("*:stack/a/*"), w("*:stack/b/*"), w("*:stack/c/*")]}),
                9,
            ),
            (
                json!({"k": [w("*:stack/a/*"), w("*:stack/b/*"), w("*:stack/c/*"), w("*:stack/d/*")]}),
                12,
            ),
            (
                json!({"key": [w("*/datasync/*.bif"), w("*/datasync/*.tif")]}),
                8,
            ),
            (
                json!({"key": [w("*/datasync/*.bif"), w("*/datasync/*.tif"), w("*/datasync/*.tiff"), w("*/datasync/*.svs")]}),
                16,
            ),
            (
                json!({"key": [w("*.bif"), w("*.tiff"), w("*.tif"), w("*.svs")]}),
                8,
            ),
            (json!({"k": [w("*a")], "j": [w("*b*c*")]}), 4),
            (json!({"k": [w("*a"), w("*b")]}), 4),
            (json!({"k": [w("*a*"), "x"]}), 3),
            (json!({"k": [w("*a*"), {"prefix": "x"}]}), 3),
            (json!({"$or": [{"k": [w("*a*")]}, {"k": [w("*b*")]}]}), 6),
            (json!({"k": [{"anything-but": {"wildcard": "*/lib/*"}}]}), 4),
        ];
        for (pattern, expected) in table {
            assert_eq!(figure(&pattern), expected, "{pattern}");
        }
    }

    #[test]
    fn rules_over_the_limit_are_refused_with_eventbridges_reason() {
        let ok = json!({"EventBusArn": [{"wildcard": "*:*:*:*:event-bus/*"}]});
        assert!(check(&ok).is_ok());
        let bad = json!({"EventBusArn": [{"wildcard": "*:*:*:*:*:event-bus/*"}]});
        let e = check(&bad).unwrap_err();
        assert_eq!(e.message, TOO_COMPLEX);
        // Long values with few stars stay cheap to evaluate.
        let long = json!({"k": [{"wildcard": format!("*a{}*", "b".repeat(2000))}]});
        assert!(check(&long).is_ok());
        // Many stars on repeated characters: cut off early, refused.
        let hostile = json!({"k": [{"wildcard": "*a".repeat(500)}]});
        assert!(check(&hostile).is_err());
    }
}
