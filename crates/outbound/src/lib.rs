//! Calls to endpoints users name: which addresses may be reached, the HTTP
//! client that enforces it, and the retry policy of a delivery. Shared by
//! the transformer's rule targets and the notifier's subscriptions.

#![forbid(unsafe_code)]

pub mod address;
pub mod http;
pub mod retry;
