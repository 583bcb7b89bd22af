//! The end-to-end suites, one module each, in one test binary. Every test
//! starts its own servers and services on free ports, so tests of different
//! suites run side by side (`--test-threads`). One suite alone:
//! `cargo test -p sluice-e2e --test e2e -- kafka::`.

mod bad_input;
mod bus;
mod bus_failures;
mod chaos;
mod failures;
mod files;
mod gateway;
mod helm_tests;
mod ingest;
mod kafka;
mod local_stack;
mod metric_names;
mod nats_permissions;
mod openapi;
mod ordering;
mod orders;
mod replays;
mod saga;
mod schedules;
mod subscriptions;
mod tasks;
mod topics;
mod traces;
mod workflows;
