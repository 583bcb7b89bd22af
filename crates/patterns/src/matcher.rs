//! Matching one event against many rules without evaluating every rule.
//!
//! Rule branches that have conditions made only of literals (`"x"`, `5`,
//! `true`, `null`) are indexed by up to [`CHAIN`] of them, as a small
//! automaton shared by every rule, as AWS's event-ruler shares its
//! automaton: from the root, an event value at a path leads to the node of
//! the branches with that literal there, and from that node, a value at a
//! second path narrows them further. So the rules that name the event's
//! `detail-type` *and* `source` are found with two lookups, whatever the
//! number of rules. Branches reached are evaluated in full. Branches with
//! no literal condition are indexed by the path of a positive condition,
//! and those with none (only `exists: false`) are always evaluated. The
//! event is flattened once, keeping only paths some rule names (from JSON
//! text without building the event, see [`Matcher::matches_json`]).

use rustc_hash::FxHashMap as HashMap;

use serde_json::Value;

use crate::error::EventError;
use crate::flat::{Flat, FromText, Paths};
use crate::limits::MAX_MATCH_STEPS;
use crate::ops::{num_key, Condition, Leaf, LitKey};
use crate::pattern::{branch_matches, ordered, Pattern};

/// Most literal conditions a branch is indexed by (automaton depth).
const CHAIN: usize = 2;

/// Most index entries one branch may take (its literal alternatives
/// multiply along the chain); past it the chain is shortened.
const MAX_ENTRIES: usize = 64;

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

/// A state of the literal automaton: the branches whose indexed literals
/// are all satisfied on the way here, and where further literals lead.
#[derive(Debug, Clone, Default)]
struct Node {
    branches: Vec<u32>,
    strs: HashMap<u32, HashMap<Box<str>, Node>>,
    others: HashMap<u32, HashMap<OtherKey, Node>>,
}

impl Node {
    fn insert(&mut self, id: u32, chain: &[(u32, &Condition)]) {
        let Some(((path, cond), rest)) = chain.split_first() else {
            self.branches.push(id);
            return;
        };
        for op in &cond.ops {
            let next = match op.literal() {
                Some(LitKey::Str(s)) => self.strs.entry(*path).or_default().entry(s).or_default(),
                Some(LitKey::Num(n)) => self.other(*path, OtherKey::Num(n)),
                Some(LitKey::Bool(b)) => self.other(*path, OtherKey::Bool(b)),
                Some(LitKey::Null) => self.other(*path, OtherKey::Null),
                None => continue,
            };
            next.insert(id, rest);
        }
    }

    fn other(&mut self, path: u32, key: OtherKey) -> &mut Node {
        self.others.entry(path).or_default().entry(key).or_default()
    }

    /// Adds the branches of this node and of every node the event's values
    /// lead to from here.
    fn collect(&self, flat: &Flat<'_>, found: &mut Found<'_>) {
        found.add(&self.branches);
        for (path, by_value) in &self.strs {
            for leaf in flat.at(*path) {
                if let Leaf::Str(s) = leaf.leaf {
                    if let Some(next) = by_value.get(s) {
                        next.collect(flat, found);
                    }
                }
            }
        }
        for (path, by_value) in &self.others {
            for leaf in flat.at(*path) {
                let key = match leaf.leaf {
                    Leaf::Str(_) => continue,
                    Leaf::Num(n) => OtherKey::Num(num_key(n)),
                    Leaf::Bool(b) => OtherKey::Bool(b),
                    Leaf::Null => OtherKey::Null,
                };
                if let Some(next) = by_value.get(&key) {
                    next.collect(flat, found);
                }
            }
        }
    }
}

/// The candidate branches of one event, each once.
struct Found<'s> {
    seen: &'s mut [u32],
    generation: u32,
    candidates: &'s mut Vec<u32>,
}

impl Found<'_> {
    fn add(&mut self, ids: &[u32]) {
        for &b in ids {
            let seen = &mut self.seen[b as usize];
            if *seen != self.generation {
                *seen = self.generation;
                self.candidates.push(b);
            }
        }
    }
}

/// Many rules, compiled into one index. Build once, match many events.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    names: Vec<Box<str>>,
    paths: Paths,
    branches: Vec<IndexedBranch>,
    literals: Node,
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
            let conds = ordered(
                branch
                    .conds
                    .iter()
                    .map(|(p, c)| (self.paths.intern(p), c.clone()))
                    .collect(),
            );
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
        // Literal conditions select by value: the fewest alternatives first.
        let mut literal: Vec<(u32, &Condition)> = positive
            .clone()
            .filter(|(_, c)| c.ops.iter().all(|op| op.literal().is_some()))
            .map(|(p, c)| (*p, c))
            .collect();
        literal.sort_by_key(|(p, c)| (c.ops.len(), *p));
        literal.truncate(CHAIN);
        while literal.iter().map(|(_, c)| c.ops.len()).product::<usize>() > MAX_ENTRIES {
            literal.pop();
        }
        if !literal.is_empty() {
            self.literals.insert(id, &literal);
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
        let mut flat = Flat::default();
        flat.fill(event, &self.paths)?;
        self.matches_flat(&flat, scratch, out)
    }

    /// The indexes of the rules the event in JSON text `event` matches
    /// (sorted), reusing `scratch`: the same answer as parsing the text and
    /// calling [`Matcher::matches_with`], without building the event. Only
    /// the values at paths some rule names are read; the rest of the text
    /// is checked as JSON and skipped. Text that is not JSON, or not an
    /// object, is an error.
    pub fn matches_json(
        &self,
        event: &str,
        scratch: &mut Scratch,
        out: &mut Vec<usize>,
    ) -> Result<(), EventError> {
        match Flat::from_text(event, &self.paths)? {
            FromText::Flat(flat) => self.matches_flat(&flat, scratch, out),
            FromText::Reparse => {
                let value: Value =
                    serde_json::from_str(event).map_err(|e| EventError::NotJson(e.to_string()))?;
                self.matches_with(&value, scratch, out)
            }
        }
    }

    fn matches_flat(
        &self,
        flat: &Flat<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<usize>,
    ) -> Result<(), EventError> {
        out.clear();
        scratch.next_generation(self.branches.len(), self.names.len());
        let generation = scratch.generation;
        let Scratch {
            branch_seen,
            rule_seen,
            candidates,
            ..
        } = scratch;
        candidates.clear();
        let mut found = Found {
            seen: branch_seen,
            generation,
            candidates,
        };
        found.add(&self.always);
        self.literals.collect(flat, &mut found);
        let mut last_path = None;
        for leaf in &flat.leaves {
            if last_path != Some(leaf.path) {
                last_path = Some(leaf.path);
                if let Some(ids) = self.by_path.get(&leaf.path) {
                    found.add(ids);
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
            if branch_matches(flat, &branch.conds, &mut steps)? {
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
