//! EventBridge event patterns: compilation to disjunctive normal form and
//! the evaluation of one branch against a flattened event.

use serde_json::{Map, Value};

use crate::error::{EventError, PatternError, Pointer};
use crate::flat::{consistent, Flat, Paths};
use crate::limits::{MAX_BRANCHES, MAX_MATCH_STEPS, MAX_PATTERN_BYTES};
use crate::ops::{compile_condition, is_reserved, Condition, Dialect};

/// One conjunction: every condition must hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    pub conds: Vec<(String, Condition)>,
}

/// A compiled EventBridge event pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub(crate) branches: Vec<Branch>,
    paths: Paths,
    compiled: Vec<Vec<(u32, Condition)>>,
}

impl Pattern {
    /// Compiles a pattern; rejects it with what is wrong and where.
    pub fn parse(pattern: &Value) -> Result<Self, PatternError> {
        let size = serde_json::to_string(pattern).map(|s| s.len()).unwrap_or(0);
        if size > MAX_PATTERN_BYTES {
            return Err(PatternError::new(
                &Pointer::Root,
                format!(
                    "Event pattern is {size} characters; at most {MAX_PATTERN_BYTES} are allowed"
                ),
            ));
        }
        let branches = compile(pattern, Dialect::EventBridge)?;
        crate::complexity::check(pattern)?;
        Self::from_branches(branches)
    }

    /// Compiles a pattern that was accepted before (a stored rule), without
    /// the limits that apply to new patterns only (wildcard complexity), so
    /// a rule accepted by an older version keeps routing after an upgrade.
    pub fn parse_stored(pattern: &Value) -> Result<Self, PatternError> {
        Self::from_branches(compile(pattern, Dialect::EventBridge)?)
    }

    /// Compiles a pattern given as JSON text.
    pub fn parse_str(text: &str) -> Result<Self, PatternError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| PatternError::new(&Pointer::Root, format!("Invalid JSON: {e}")))?;
        Self::parse(&value)
    }

    pub(crate) fn from_branches(branches: Vec<Branch>) -> Result<Self, PatternError> {
        let mut paths = Paths::default();
        let compiled = branches
            .iter()
            .map(|b| {
                ordered(
                    b.conds
                        .iter()
                        .map(|(p, c)| (paths.intern(p), c.clone()))
                        .collect(),
                )
            })
            .collect();
        Ok(Self {
            branches,
            paths,
            compiled,
        })
    }

    /// Whether `event` (a JSON object) matches. Flattens the event for this
    /// pattern alone; to match against many patterns use [`crate::Matcher`].
    pub fn matches(&self, event: &Value) -> Result<bool, EventError> {
        let mut flat = Flat::default();
        flat.fill(event, &self.paths)?;
        self.matches_flat(&flat)
    }

    pub(crate) fn matches_flat(&self, flat: &Flat<'_>) -> Result<bool, EventError> {
        let mut steps = MAX_MATCH_STEPS;
        for conds in &self.compiled {
            if branch_matches(flat, conds, &mut steps)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Compiles a pattern or policy to its branches.
pub(crate) fn compile(pattern: &Value, dialect: Dialect) -> Result<Vec<Branch>, PatternError> {
    let Value::Object(map) = pattern else {
        return Err(PatternError::new(&Pointer::Root, "Filter is not an object"));
    };
    let alts = compile_object(map, "", &Pointer::Root, dialect)?;
    Ok(alts.into_iter().map(|conds| Branch { conds }).collect())
}

type Alternatives = Vec<Vec<(String, Condition)>>;

fn compile_object(
    map: &Map<String, Value>,
    prefix: &str,
    at: &Pointer<'_>,
    dialect: Dialect,
) -> Result<Alternatives, PatternError> {
    if map.is_empty() {
        return Err(PatternError::new(at, "Empty objects are not allowed"));
    }
    let mut alts: Alternatives = vec![Vec::new()];
    for (key, value) in map {
        let here = at.key(key);
        if key == "$or" {
            let Value::Array(items) = value else {
                return Err(PatternError::new(
                    &here,
                    "It must be an Array followed with $or.",
                ));
            };
            if items.len() < 2 {
                return Err(PatternError::new(
                    &here,
                    "There must have at least 2 Objects in $or relationship.",
                ));
            }
            let mut union: Alternatives = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at_i = here.index(i);
                let Value::Object(obj) = item else {
                    return Err(PatternError::new(
                        &at_i,
                        "Only JSON object is allowed in array of $or relationship.",
                    ));
                };
                if let Some(reserved) = obj.keys().find(|k| is_reserved(k)) {
                    return Err(PatternError::new(
                        &at_i,
                        format!("{reserved} is Ruler reserved fieldName which cannot be used inside $or."),
                    ));
                }
                union.extend(compile_object(obj, prefix, &at_i, dialect)?);
            }
            alts = cross(alts, union, &here)?;
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(obj) => {
                let sub = compile_object(obj, &path, &here, dialect)?;
                alts = cross(alts, sub, &here)?;
            }
            Value::Array(items) => {
                let cond = compile_condition(items, &here, dialect)?;
                for alt in &mut alts {
                    alt.push((path.clone(), cond.clone()));
                }
            }
            _ => {
                return Err(PatternError::new(
                    &here,
                    format!("\"{key}\" must be an object or an array"),
                ))
            }
        }
    }
    Ok(alts)
}

fn cross(
    left: Alternatives,
    right: Alternatives,
    at: &Pointer<'_>,
) -> Result<Alternatives, PatternError> {
    if left.len().saturating_mul(right.len()) > MAX_BRANCHES {
        return Err(PatternError::new(
            at,
            format!("The $or combinations of this pattern exceed {MAX_BRANCHES}"),
        ));
    }
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in &left {
        for r in &right {
            let mut both = l.clone();
            both.extend(r.iter().cloned());
            out.push(both);
        }
    }
    Ok(out)
}

/// A branch's conditions in the order [`branch_matches`] takes them:
/// positive conditions first, those absence can satisfy last (absence is
/// judged against the array elements the others chose).
pub(crate) fn ordered(mut conds: Vec<(u32, Condition)>) -> Vec<(u32, Condition)> {
    conds.sort_by_key(|(_, c)| c.absent_ok);
    conds
}

/// Whether every condition holds, with values chosen from consistent array
/// elements. `conds` are [`ordered`]. `steps` bounds the search on hostile
/// events.
pub(crate) fn branch_matches(
    flat: &Flat<'_>,
    conds: &[(u32, Condition)],
    steps: &mut usize,
) -> Result<bool, EventError> {
    // Each condition on its own first. That is the answer when at most one
    // condition has values inside arrays of objects (any element it picks
    // agrees with values outside arrays); otherwise a positive condition
    // failing on its own still fails the branch, and what passes goes to
    // the search for one consistent choice of elements.
    let mut in_arrays = 0;
    let mut absence_unsure = false;
    for (path, cond) in conds {
        let leaves = flat.at(*path);
        if flat.has_trails && leaves.iter().any(|l| flat.in_array(l)) {
            in_arrays += 1;
        }
        let hit = leaves
            .iter()
            .any(|l| cond.ops.iter().any(|op| op.test(&l.leaf)));
        if !(hit || (cond.absent_ok && leaves.is_empty())) {
            if !cond.absent_ok {
                return Ok(false);
            }
            absence_unsure = true;
        }
    }
    if in_arrays <= 1 {
        return Ok(!absence_unsure);
    }
    let mut chosen: Vec<&[(u32, u32)]> = Vec::with_capacity(conds.len());
    search(flat, conds, 0, &mut chosen, steps)
}

fn search<'f>(
    flat: &'f Flat<'_>,
    order: &[(u32, Condition)],
    i: usize,
    chosen: &mut Vec<&'f [(u32, u32)]>,
    steps: &mut usize,
) -> Result<bool, EventError> {
    let Some((path, cond)) = order.get(i) else {
        return Ok(true);
    };
    let leaves = flat.at(*path);
    for leaf in leaves {
        *steps = steps.checked_sub(1).ok_or(EventError::TooComplex)?;
        let trail = flat.trail(leaf);
        if !chosen.iter().all(|c| consistent(c, trail)) {
            continue;
        }
        if !cond.ops.iter().any(|op| op.test(&leaf.leaf)) {
            continue;
        }
        chosen.push(trail);
        let ok = search(flat, order, i + 1, chosen, steps)?;
        chosen.pop();
        if ok {
            return Ok(true);
        }
    }
    if cond.absent_ok {
        let present = leaves
            .iter()
            .any(|l| chosen.iter().all(|c| consistent(c, flat.trail(l))));
        if !present {
            return search(flat, order, i + 1, chosen, steps);
        }
    }
    Ok(false)
}
