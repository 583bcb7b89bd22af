//! The routing languages of the bus and of fan-out, exactly as AWS defines
//! them, with no I/O:
//!
//! - [`Pattern`]: EventBridge event patterns (exact values, `prefix`,
//!   `suffix`, `equals-ignore-case`, `wildcard`, `anything-but`, `numeric`,
//!   `exists`, `cidr`, `$or`), compiled once, rejected at compile time with
//!   what is wrong and where (a JSON pointer).
//! - [`Matcher`]: many patterns in one index, so matching an event costs
//!   roughly what the rules its values can satisfy cost, not one evaluation
//!   per rule.
//! - [`sns::FilterPolicy`]: SNS subscription filter policies, both scopes.
//! - [`transform::Input`]: EventBridge `InputPath` and `InputTransformer`.
//!
//! Semantics follow AWS's reference matcher (event-ruler) including array
//! consistency: fields matched inside an array of objects must come from
//! the same element. Work on hostile events is bounded ([`limits`]).

#![forbid(unsafe_code)]

pub mod complexity;
mod error;
mod flat;
mod matcher;
mod ops;
mod pattern;
pub mod sns;
pub mod transform;

pub use error::{EventError, PatternError};
pub use matcher::{Matcher, Scratch};
pub use ops::Dialect;
pub use pattern::Pattern;

/// Bounds on patterns and events.
pub mod limits {
    /// Longest pattern, serialised (EventBridge's API limit).
    pub const MAX_PATTERN_BYTES: usize = 4096;
    /// Most branches `$or` may expand a pattern into (EventBridge's limit).
    pub const MAX_BRANCHES: usize = 1000;
    /// Deepest event nesting matched.
    pub const MAX_EVENT_DEPTH: usize = 128;
    /// Most scalar values an event may have.
    pub const MAX_EVENT_LEAVES: usize = 100_000;
    /// Most steps the array-consistency search may take per event.
    pub const MAX_MATCH_STEPS: usize = 1_000_000;
}
