//! sluice's gRPC contracts: the messages and the client and server stubs
//! generated from `proto/sluice/v1/*.proto` at build time (nothing
//! generated is committed).
//!
//! - `EventBus` (transformer): buses, rules, targets, TestEventPattern.
//! - `Queues` (transformer): sluice queues.
//! - `Topics` (notifier): topics and publishing to them.
//! - `Workflows` (orchestrator): starting workflows.

#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Version 1 of the contracts (`sluice.v1`).
pub mod v1 {
    tonic::include_proto!("sluice.v1");
}
