//! Flattening an event once into `(path, scalar)` pairs, keeping only the
//! paths some rule names, without allocating per field.
//!
//! Paths join object keys with `.` (so `{"a":{"b":1}}` and `{"a.b":1}` are
//! the same path, as in event-ruler). Arrays are transparent: each element
//! contributes to the array's path. Each value carries its *trail*, the
//! (array, element) pairs of the arrays of objects it sits in, so a match
//! can require fields of one array element to come from the same element.

use rustc_hash::FxHashMap;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
    /// This path's entry, whatever it means (tells repeated keys apart).
    node: u32,
}

impl Lookup {
    const NOTHING: Lookup = Lookup {
        path: None,
        prefix: false,
        node: u32::MAX,
    };
    const ROOT: Lookup = Lookup {
        path: None,
        prefix: true,
        node: u32::MAX,
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

fn entry<'m>(map: &'m mut FxHashMap<Box<str>, Lookup>, path: &str) -> &'m mut Lookup {
    let node = u32::try_from(map.len()).unwrap_or(u32::MAX - 1);
    map.entry(path.into()).or_insert(Lookup {
        node,
        ..Lookup::NOTHING
    })
}

impl Paths {
    /// Interns `path` (and registers its prefixes); returns its id.
    pub(crate) fn intern(&mut self, path: &str) -> u32 {
        if let Some(id) = self.map.get(path).and_then(|l| l.path) {
            return id;
        }
        let id = self.count;
        self.count += 1;
        entry(&mut self.map, path).path = Some(id);
        let mut end = 0;
        while let Some(i) = path[end..].find('.') {
            end += i;
            entry(&mut self.map, &path[..end]).prefix = true;
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
    /// Text only: the constrained keys of the objects being read (repeats).
    keys: Vec<u32>,
    /// Text only: why reading stopped early.
    stop: Option<Stop>,
}

/// Why reading an event's text stopped before its end.
#[derive(Debug)]
enum Stop {
    Event(EventError),
    /// The text means something the borrowed, one-pass reading cannot hold
    /// (a constrained key repeated, a constrained string with escapes): the
    /// event is matched from its parsed value instead.
    Reparse,
}

/// What flattening an event's text found.
pub(crate) enum FromText<'e> {
    Flat(Flat<'e>),
    /// Match the parsed value instead (see [`Stop::Reparse`]).
    Reparse,
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
        self.visit(event, Lookup::ROOT, paths, 0)?;
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
            scalar => self.scalar(here, Leaf::of(scalar))?,
        }
        Ok(())
    }

    /// Flattens the JSON text of an event (an object) against `paths`,
    /// reading only what they constrain: values under other keys are
    /// checked as JSON and skipped, never built; constrained strings are
    /// borrowed from `text`.
    pub(crate) fn from_text(text: &'e str, paths: &Paths) -> Result<FromText<'e>, EventError> {
        if !text.trim_start().starts_with('{') {
            return Err(match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => EventError::NotAnObject,
                Err(e) => EventError::NotJson(e.to_string()),
            });
        }
        let mut flat = Flat::default();
        let mut de = serde_json::Deserializer::from_str(text);
        let read = Walk {
            flat: &mut flat,
            paths,
            here: Lookup::ROOT,
            element: None,
            depth: 0,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        match (read, flat.stop.take()) {
            (_, Some(Stop::Reparse)) => Ok(FromText::Reparse),
            (_, Some(Stop::Event(e))) => Err(e),
            (Err(e), None) => Err(EventError::NotJson(e.to_string())),
            (Ok(()), None) => {
                flat.leaves.sort_by_key(|l| l.path);
                Ok(FromText::Flat(flat))
            }
        }
    }

    fn scalar(&mut self, here: Lookup, leaf: Option<Leaf<'e>>) -> Result<(), EventError> {
        self.seen += 1;
        if self.seen > MAX_EVENT_LEAVES {
            return Err(EventError::TooManyValues(MAX_EVENT_LEAVES));
        }
        if let (Some(path), Some(leaf)) = (here.path, leaf) {
            let start = u32::try_from(self.trails.len()).unwrap_or(u32::MAX);
            self.trails.extend_from_slice(&self.stack);
            let len = u32::try_from(self.stack.len()).unwrap_or(u32::MAX);
            self.leaves.push(FlatLeaf {
                path,
                leaf,
                trail: (start, len),
            });
        }
        Ok(())
    }

    /// The values at `path`.
    pub(crate) fn at(&self, path: u32) -> &[FlatLeaf<'e>] {
        let start = self.leaves.partition_point(|l| l.path < path);
        let end = start + self.leaves[start..].partition_point(|l| l.path == path);
        &self.leaves[start..end]
    }

    /// Whether `leaf` sits inside an array of objects.
    pub(crate) fn in_array(&self, leaf: &FlatLeaf<'_>) -> bool {
        leaf.trail.1 > 0
    }

    pub(crate) fn trail(&self, leaf: &FlatLeaf<'_>) -> &[(u32, u32)] {
        let (start, len) = leaf.trail;
        &self.trails[start as usize..(start + len) as usize]
    }
}

/// One value of an event's text, read against the rules' paths.
struct Walk<'f, 'e> {
    flat: &'f mut Flat<'e>,
    paths: &'f Paths,
    here: Lookup,
    /// (array, index) when this value is an element of an array.
    element: Option<(u32, u32)>,
    depth: usize,
}

impl<'f, 'e> Walk<'f, 'e> {
    /// Stops reading (the error serde carries is replaced by `stop`).
    fn stop<E: de::Error>(self, stop: Stop) -> E {
        self.flat.stop = Some(stop);
        E::custom("stopped")
    }

    fn leaf<E: de::Error>(self, leaf: Leaf<'e>) -> Result<(), E> {
        match self.flat.scalar(self.here, Some(leaf)) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.stop(Stop::Event(e))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth > MAX_EVENT_DEPTH {
            return Err(self.stop(Stop::Event(EventError::TooDeep(MAX_EVENT_DEPTH))));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.leaf(Leaf::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.leaf(Leaf::Num(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.leaf(Leaf::Num(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.leaf(Leaf::Num(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf(Leaf::Null)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.leaf(Leaf::Str(v))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        // Unescaped into a buffer that does not outlive this call.
        if self.here.path.is_some() {
            return Err(self.stop(Stop::Reparse));
        }
        match self.flat.scalar(self.here, None) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.stop(Stop::Event(e))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if !self.here.prefix {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let Walk {
            flat,
            paths,
            element,
            depth,
            ..
        } = self;
        if let Some(e) = element {
            flat.stack.push(e);
            flat.has_trails = true;
        }
        let keys = flat.keys.len();
        loop {
            let len = flat.buf.len();
            if len > 0 {
                flat.buf.push('.');
            }
            if map.next_key_seed(KeyInto(&mut flat.buf))?.is_none() {
                flat.buf.truncate(len);
                break;
            }
            let lookup = paths.lookup(&flat.buf);
            if lookup == Lookup::NOTHING {
                flat.buf.truncate(len);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            // A repeated key means its last value (as a parsed value has it).
            if flat.keys[keys..].contains(&lookup.node) {
                flat.stop = Some(Stop::Reparse);
                return Err(de::Error::custom("stopped"));
            }
            flat.keys.push(lookup.node);
            map.next_value_seed(Walk {
                flat: &mut *flat,
                paths,
                here: lookup,
                element: None,
                depth: depth + 1,
            })?;
            flat.buf.truncate(len);
        }
        flat.keys.truncate(keys);
        if element.is_some() {
            flat.stack.pop();
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Walk {
            flat,
            paths,
            here,
            depth,
            ..
        } = self;
        let id = flat.arrays;
        flat.arrays += 1;
        let mut i = 0u32;
        while seq
            .next_element_seed(Walk {
                flat: &mut *flat,
                paths,
                here,
                element: Some((id, i)),
                depth: depth + 1,
            })?
            .is_some()
        {
            i = i.saturating_add(1);
        }
        Ok(())
    }
}

/// An object key, appended to the path being built.
struct KeyInto<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for KeyInto<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

/// Two trails agree when every array they share has the same element chosen.
pub(crate) fn consistent(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    a.iter()
        .all(|(arr, idx)| b.iter().all(|(arr2, idx2)| arr != arr2 || idx == idx2))
}
