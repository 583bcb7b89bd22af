//! Errors of pattern compilation and matching.

/// A pattern, policy or template that cannot be compiled: what is wrong and
/// where (a JSON pointer into the pattern, `""` for the whole of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {})", if .pointer.is_empty() { "the top level" } else { .pointer.as_str() })]
pub struct PatternError {
    /// JSON pointer to the offending part.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl PatternError {
    pub(crate) fn new(pointer: &Pointer<'_>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.to_string(),
            message: message.into(),
        }
    }
}

/// An event that cannot be matched because it is outside the bounds a
/// matcher accepts (too deep, too many values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// An event given as text that is not JSON.
    #[error("the event is not JSON: {0}")]
    NotJson(String),
    /// Events must be JSON objects.
    #[error("the event must be a JSON object")]
    NotAnObject,
    /// Nested deeper than [`crate::limits::MAX_EVENT_DEPTH`].
    #[error("the event is nested deeper than {0} levels")]
    TooDeep(usize),
    /// More leaf values than [`crate::limits::MAX_EVENT_LEAVES`].
    #[error("the event has more than {0} values")]
    TooManyValues(usize),
    /// SNS message attributes not of the form `{"name": {"Type", "Value"}}`.
    #[error("{0}")]
    BadAttributes(String),
    /// Array-consistency search over [`crate::limits::MAX_MATCH_STEPS`] steps.
    #[error("the event is too complex to match (arrays of objects)")]
    TooComplex,
}

/// A JSON pointer under construction, as a linked list on the stack.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pointer<'a> {
    Root,
    Key(&'a Pointer<'a>, &'a str),
    Index(&'a Pointer<'a>, usize),
}

impl<'a> Pointer<'a> {
    pub(crate) fn key(&'a self, k: &'a str) -> Pointer<'a> {
        Pointer::Key(self, k)
    }
    pub(crate) fn index(&'a self, i: usize) -> Pointer<'a> {
        Pointer::Index(self, i)
    }
}

impl std::fmt::Display for Pointer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pointer::Root => Ok(()),
            Pointer::Key(parent, k) => {
                write!(f, "{parent}/")?;
                f.write_str(&k.replace('~', "~0").replace('/', "~1"))
            }
            Pointer::Index(parent, i) => write!(f, "{parent}/{i}"),
        }
    }
}
