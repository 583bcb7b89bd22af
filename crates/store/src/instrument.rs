//! Every store operation measured, whatever code issued it: an interceptor on
//! the DynamoDB client records `sluice_store_operation_duration_seconds{op}`
//! (the whole operation, retries included) and counts failures in
//! `sluice_store_errors{op,kind}`, where `kind` is `throttled` (the store
//! asked us to slow down), `timeout`, `unavailable` (no response) or `error`.
//! A failed condition is an answer, not an error: it is counted as
//! `sluice_store_conditions_failed{op}`. The first time an operation is seen
//! its error series are set to 0, so a rate over them exists before the
//! first error (an alert on an absent series never fires).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// The interceptor the store's client is built with.
#[derive(Debug, Default)]
pub(crate) struct StoreMetrics;

#[derive(Debug, Clone)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

/// The error kinds, each a series per operation.
const KINDS: [&str; 4] = ["throttled", "timeout", "unavailable", "error"];

/// Operations whose series exist already.
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn first_sight(op: &str) {
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.get_or_insert_with(HashSet::new).insert(op.to_string()) {
        for kind in KINDS {
            metrics::counter!("sluice.store.errors", "op" => op.to_string(), "kind" => kind)
                .absolute(0);
        }
        metrics::counter!("sluice.store.conditions_failed", "op" => op.to_string()).absolute(0);
    }
}

/// What a failed operation's error says about the store.
pub(crate) fn classify(debug: &str, timeout: bool, no_response: bool) -> Option<&'static str> {
    if debug.contains("ConditionalCheckFailed") {
        None
    } else if debug.contains("Throttling")
        || debug.contains("ProvisionedThroughputExceeded")
        || debug.contains("RequestLimitExceeded")
    {
        Some("throttled")
    } else if timeout {
        Some("timeout")
    } else if no_response {
        Some("unavailable")
    } else {
        Some("error")
    }
}

impl Intercept for StoreMetrics {
    fn name(&self) -> &'static str {
        "sluice-store-metrics"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        first_sight(&op);
        if let Some(Started(at)) = cfg.load::<Started>() {
            metrics::histogram!("sluice.store.operation.duration.seconds", "op" => op.clone())
                .record(at.elapsed().as_secs_f64());
        }
        if let Some(Err(e)) = context.output_or_error() {
            let debug = format!("{e:?}");
            match classify(&debug, e.is_timeout_error(), e.is_connector_error()) {
                Some(kind) => {
                    metrics::counter!("sluice.store.errors", "op" => op, "kind" => kind)
                        .increment(1);
                }
                None => {
                    metrics::counter!("sluice.store.conditions_failed", "op" => op).increment(1);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn errors_are_sorted_by_what_they_say_about_the_store() {
        assert_eq!(
            classify("ConditionalCheckFailedException { .. }", false, false),
            None
        );
        assert_eq!(
            classify("ThrottlingException", false, false),
            Some("throttled")
        );
        assert_eq!(
            classify("ProvisionedThroughputExceededException", false, false),
            Some("throttled")
        );
        assert_eq!(classify("TimeoutError", true, false), Some("timeout"));
        assert_eq!(
            classify("DispatchFailure", false, true),
            Some("unavailable")
        );
        assert_eq!(classify("ValidationException", false, false), Some("error"));
    }
}
