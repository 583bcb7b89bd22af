//! Matching one event against many rules without evaluating every rule.
//!
//! Each rule branch is indexed by one *anchor*: a condition the branch
//! cannot match without. An anchor made only of literals is indexed by
//! (path, value) in hash maps; other anchors by path. For an event, the
//! matcher flattens it once (keeping only paths some rule names), looks up
//! the branches its values can anchor, and evaluates only those. Branches
//! with no positive condition (only `exists: false`) are always evaluated.

use rustc_hash::FxHashMap as HashMap;

use serde_json::Value;

use crate::error::EventError;
use crate::flat::{Flat, Paths};
use crate::limits::MAX_MATCH_STEPS;
use crate::ops::{num_key, Condition, Leaf, LitKey};
use crate::pattern::{branch_matches, Pattern};

/// Scalar literals other than strings, as index keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OtherKey {
    Num(u64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone)]
struct IndexedBranch {
    rule: u32,
    conds: Vec<(u32, Condition)>,
}

/// Many rules, compiled into one index. Build once, match many events.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    names: Vec<Box<str>>,
    paths: Paths,
    branches: Vec<IndexedBranch>,
    exact_str: HashMap<u32, HashMap<Box<str>, Vec<u32>>>,
    exact_other: HashMap<(u32, OtherKey), Vec<u32>>,
    by_path: HashMap<u32, Vec<u32>>,
    always: Vec<u32>,
}

/// Buffers reused between [`Matcher::matches_with`] calls.
#[derive(Debug, Default)]
pub struct Scratch {
    branch_seen: Vec<u32>,
    rule_seen: Vec<u32>,
    generation: u32,
    candidates: Vec<u32>,
}

impl Matcher {
    /// An empty matcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Adds a rule; its index in match results is the order of addition.
    pub fn add(&mut self, name: impl Into<Box<str>>, pattern: &Pattern) -> usize {
        let rule = self.names.len();
        self.names.push(name.into());
        let rule_id = u32::try_from(rule).unwrap_or(u32::MAX);
        for branch in &pattern.branches {
            let conds: Vec<(u32, Condition)> = branch
                .conds
                .iter()
                .map(|(p, c)| (self.paths.intern(p), c.clone()))
                .collect();
            let id = u32::try_from(self.branches.len()).unwrap_or(u32::MAX);
            self.index(id, &conds);
            self.branches.push(IndexedBranch {
                rule: rule_id,
                conds,
            });
        }
        rule
    }

    fn index(&mut self, id: u32, conds: &[(u32, Condition)]) {
        let positive = conds.iter().filter(|(_, c)| !c.absent_ok);
        // Prefer an anchor of literals only: it selects by value, not just by path.
        let literal = positive
            .clone()
            .filter(|(_, c)| c.ops.iter().all(|op| op.literal().is_some()))
            .min_by_key(|(_, c)| c.ops.len());
        if let Some((path, cond)) = literal {
            for op in &cond.ops {
                match op.literal() {
                    Some(LitKey::Str(s)) => self
                        .exact_str
                        .entry(*path)
                        .or_default()
                        .entry(s)
                        .or_default()
                        .push(id),
                    Some(LitKey::Num(n)) => self
                        .exact_other
                        .entry((*path, OtherKey::Num(n)))
                        .or_default()
                        .push(id),
                    Some(LitKey::Bool(b)) => self
                        .exact_other
                        .entry((*path, OtherKey::Bool(b)))
                        .or_default()
                        .push(id),
                    Some(LitKey::Null) => self
                        .exact_other
                        .entry((*path, OtherKey::Null))
                        .or_default()
                        .push(id),
                    None => {}
                }
            }
            return;
        }
        match positive.clone().next() {
            Some((path, _)) => self.by_path.entry(*path).or_default().push(id),
            None => self.always.push(id),
        }
    }

    /// The names of the rules `event` matches, in order of addition.
    pub fn matches(&self, event: &Value) -> Result<Vec<&str>, EventError> {
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        self.matches_with(event, &mut scratch, &mut out)?;
        Ok(out.into_iter().map(|i| &*self.names[i]).collect())
    }

    /// The indexes of the rules `event` matches (sorted), reusing `scratch`.
    pub fn matches_with(
        &self,
        event: &Value,
        scratch: &mut Scratch,
        out: &mut Vec<usize>,
    ) -> Result<(), EventError> {
        out.clear();
        let mut flat = Flat::default();
        flat.fill(event, &self.paths)?;
        scratch.next_generation(self.branches.len(), self.names.len());
        let generation = scratch.generation;
        let Scratch {
            branch_seen,
            rule_seen,
            candidates,
            ..
        } = scratch;
        candidates.clear();
        let mut add = |ids: &[u32]| {
            for &b in ids {
                let seen = &mut branch_seen[b as usize];
                if *seen != generation {
                    *seen = generation;
                    candidates.push(b);
                }
            }
        };
        add(&self.always);
        let mut last_path = None;
        for leaf in &flat.leaves {
            if last_path != Some(leaf.path) {
                last_path = Some(leaf.path);
                if let Some(ids) = self.by_path.get(&leaf.path) {
                    add(ids);
                }
            }
            match leaf.leaf {
                Leaf::Str(s) => {
                    if let Some(ids) = self.exact_str.get(&leaf.path).and_then(|m| m.get(s)) {
                        add(ids);
                    }
                }
                other => {
                    let key = match other {
                        Leaf::Num(n) => OtherKey::Num(num_key(n)),
                        Leaf::Bool(b) => OtherKey::Bool(b),
                        _ => OtherKey::Null,
                    };
                    if let Some(ids) = self.exact_other.get(&(leaf.path, key)) {
                        add(ids);
                    }
                }
            }
        }
        let mut steps = MAX_MATCH_STEPS;
        for &b in candidates.iter() {
            let branch = &self.branches[b as usize];
            let rule = branch.rule as usize;
            if rule_seen[rule] == generation {
                continue;
            }
            if branch_matches(&flat, &branch.conds, &mut steps)? {
                rule_seen[rule] = generation;
                out.push(rule);
            }
        }
        out.sort_unstable();
        Ok(())
    }
}

impl Scratch {
    fn next_generation(&mut self, branches: usize, rules: usize) {
        if self.branch_seen.len() < branches {
            self.branch_seen.resize(branches, 0);
        }
        if self.rule_seen.len() < rules {
            self.rule_seen.resize(rules, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.branch_seen.iter_mut().for_each(|g| *g = 0);
            self.rule_seen.iter_mut().for_each(|g| *g = 0);
            self.generation = 1;
        }
    }
}
