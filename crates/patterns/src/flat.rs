//! Flattening an event once into `(path, scalar)` pairs, keeping only the
//! paths some rule names, without allocating per field.
//!
//! Paths join object keys with `.` (so `{"a":{"b":1}}` and `{"a.b":1}` are
//! the same path, as in event-ruler). Arrays are transparent: each element
//! contributes to the array's path. Each value carries its *trail*, the
//! (array, element) pairs of the arrays of objects it sits in, so a match
//! can require fields of one array element to come from the same element.

use rustc_hash::FxHashMap;

use serde_json::Value;

use crate::error::EventError;
use crate::limits::{MAX_EVENT_DEPTH, MAX_EVENT_LEAVES};
use crate::ops::Leaf;

/// What a path means to the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lookup {
    /// Some rule constrains exactly this path.
    pub path: Option<u32>,
    /// Some rule constrains a path below this one.
    pub prefix: bool,
}

impl Lookup {
    const NOTHING: Lookup = Lookup {
        path: None,
        prefix: false,
    };
}

/// The paths rules constrain, interned, and their prefixes: one hash
/// lookup per event key tells both whether to keep its value and whether
/// to walk below it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Paths {
    map: FxHashMap<Box<str>, Lookup>,
    count: u32,
}

impl Paths {
    /// Interns `path` (and registers its prefixes); returns its id.
    pub(crate) fn intern(&mut self, path: &str) -> u32 {
        if let Some(id) = self.map.get(path).and_then(|l| l.path) {
            return id;
        }
        let id = self.count;
        self.count += 1;
        self.map.entry(path.into()).or_insert(Lookup::NOTHING).path = Some(id);
        let mut end = 0;
        while let Some(i) = path[end..].find('.') {
            end += i;
            self.map
                .entry(path[..end].into())
                .or_insert(Lookup::NOTHING)
                .prefix = true;
            end += 1;
        }
        id
    }

    fn lookup(&self, path: &str) -> Lookup {
        self.map.get(path).copied().unwrap_or(Lookup::NOTHING)
    }
}

/// One value at a constrained path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlatLeaf<'e> {
    pub path: u32,
    pub leaf: Leaf<'e>,
    trail: (u32, u32),
}

/// An event flattened against a set of paths. Reusable between events.
#[derive(Debug, Default)]
pub(crate) struct Flat<'e> {
    pub leaves: Vec<FlatLeaf<'e>>,
    trails: Vec<(u32, u32)>,
    /// Whether any value sits in an array of objects (only then do trails matter).
    pub has_trails: bool,
    stack: Vec<(u32, u32)>,
    buf: String,
    arrays: u32,
    seen: usize,
}

impl<'e> Flat<'e> {
    /// Flattens `event` (a JSON object) against `paths`.
    pub(crate) fn fill(&mut self, event: &'e Value, paths: &Paths) -> Result<(), EventError> {
        self.leaves.clear();
        self.trails.clear();
        self.stack.clear();
        self.buf.clear();
        self.has_trails = false;
        self.arrays = 0;
        self.seen = 0;
        if !event.is_object() {
            return Err(EventError::NotAnObject);
        }
        let root = Lookup {
            path: None,
            prefix: true,
        };
        self.visit(event, root, paths, 0)?;
        self.leaves.sort_by_key(|l| l.path);
        Ok(())
    }

    fn visit(
        &mut self,
        v: &'e Value,
        here: Lookup,
        paths: &Paths,
        depth: usize,
    ) -> Result<(), EventError> {
        if depth > MAX_EVENT_DEPTH {
            return Err(EventError::TooDeep(MAX_EVENT_DEPTH));
        }
        match v {
            Value::Object(map) => {
                if !here.prefix {
                    return Ok(());
                }
                for (key, child) in map {
                    let len = self.buf.len();
                    if len > 0 {
                        self.buf.push('.');
                    }
                    self.buf.push_str(key);
                    let lookup = paths.lookup(&self.buf);
                    if lookup != Lookup::NOTHING {
                        self.visit(child, lookup, paths, depth + 1)?;
                    }
                    self.buf.truncate(len);
                }
            }
            Value::Array(items) => {
                let id = self.arrays;
                self.arrays += 1;
                for (i, item) in items.iter().enumerate() {
                    if item.is_object() {
                        if !here.prefix {
                            continue;
                        }
                        self.stack.push((id, u32::try_from(i).unwrap_or(u32::MAX)));
                        self.has_trails = true;
                        let r = self.visit(item, here, paths, depth + 1);
                        self.stack.pop();
                        r?;
                    } else {
                        self.visit(item, here, paths, depth + 1)?;
                    }
                }
            }
            scalar => {
                self.seen += 1;
                if self.seen > MAX_EVENT_LEAVES {
                    return Err(EventError::TooManyValues(MAX_EVENT_LEAVES));
                }
                if let (Some(path), Some(leaf)) = (here.path, Leaf::of(scalar)) {
                    let start = u32::try_from(self.trails.len()).unwrap_or(u32::MAX);
                    self.trails.extend_from_slice(&self.stack);
                    let len = u32::try_from(self.stack.len()).unwrap_or(u32::MAX);
                    self.leaves.push(FlatLeaf {
                        path,
                        leaf,
                        trail: (start, len),
                    });
                }
            }
        }
        Ok(())
    }

    /// The values at `path`.
    pub(crate) fn at(&self, path: u32) -> &[FlatLeaf<'e>] {
        let start = self.leaves.partition_point(|l| l.path < path);
        let end = start + self.leaves[start..].partition_point(|l| l.path == path);
        &self.leaves[start..end]
    }

    pub(crate) fn trail(&self, leaf: &FlatLeaf<'_>) -> &[(u32, u32)] {
        let (start, len) = leaf.trail;
        &self.trails[start as usize..(start + len) as usize]
    }
}

/// Two trails agree when every array they share has the same element chosen.
pub(crate) fn consistent(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    a.iter()
        .all(|(arr, idx)| b.iter().all(|(arr2, idx2)| arr != arr2 || idx == idx2))
}
