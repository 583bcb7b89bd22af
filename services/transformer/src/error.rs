//! How admin calls fail: the shared mapping to gRPC statuses.

pub use sluice_runtime::grpc::{AdminError, AdminResult};
