//! The data sluice moves and keeps: the EventBridge-shaped event envelope,
//! the client-facing inputs (events, orders, stock), their validation, and
//! the rules for ids (client ids, derived ids).
//!
//! Everything here is pure: no I/O, so the gateway, the processor and tests
//! share one definition of what is valid.

#![forbid(unsafe_code)]

pub mod envelope;
pub mod event;
pub mod ids;
pub mod input;
pub mod money;
pub mod order;

pub use envelope::Envelope;
pub use event::{EventInput, EventStatus};
pub use input::{from_value, parse_json, FieldError, InputError};
pub use order::{OrderInput, OrderItem, OrderStatus, PlacedOrder};
