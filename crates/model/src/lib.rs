//! The data sluice moves and keeps: the EventBridge-shaped event envelope,
//! the client-facing inputs (events, orders, stock), their validation, the
//! rules for ids (client ids, derived ids) and for the names users give
//! buses, rules, queues and topics, and the topic message contract.
//!
//! Everything here is pure: no I/O, so the gateway, the processor and tests
//! share one definition of what is valid.

#![forbid(unsafe_code)]

pub mod envelope;
pub mod event;
pub mod file;
pub mod ids;
pub mod input;
pub mod money;
pub mod names;
pub mod order;
pub mod task;
pub mod topic;

pub use envelope::Envelope;
pub use event::{EventInput, EventStatus};
pub use input::{from_value, parse_json, FieldError, InputError};
pub use order::{OrderInput, OrderItem, OrderStatus, PlacedOrder};
