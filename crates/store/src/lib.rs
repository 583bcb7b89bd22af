//! sluice's tables, spoken over the DynamoDB API with the official AWS SDK.
//!
//! Production runs ScyllaDB's Alternator; tests and `make up` run DynamoDB
//! Local. Only the API subset Alternator implements is used: single-item
//! conditional writes (Alternator isolates them with LWT), GetItem with
//! consistent reads, BatchWriteItem without conditions, no transactions.
//!
//! One module per table, each with its key schema and access functions.

#![forbid(unsafe_code)]

pub mod buses;
pub mod events;
pub mod files;
pub mod idempotency;
mod instrument;
pub mod inventory;
pub mod orders;
pub mod queues;
pub mod replays;
pub mod rules;
mod schema;
pub mod specs;
pub mod subscriptions;
pub mod tasks;
pub mod topics;

use std::collections::HashMap;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
pub use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use sluice_config::StoreConfig;

/// Errors from the store, classified by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or was overloaded: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request; retrying the same request will not help.
    #[error("store rejected the request: {0}")]
    Rejected(String),
    /// An item read from the store is not of the expected shape.
    #[error("corrupt item in {table}: {reason}")]
    Corrupt {
        /// Table.
        table: String,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Classifies an SDK error. `ConditionalCheckFailed` is handled by callers
/// before this, as an outcome rather than an error.
pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let msg = se.err().message().unwrap_or("").to_string();
            let transient = matches!(
                code.as_str(),
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "InternalFailure"
                    | "ServiceUnavailable"
                    | "ResourceInUseException"
                    // A table not created yet (start-up, or another replica creating it).
                    | "ResourceNotFoundException"
            );
            if transient {
                StoreError::Unavailable(format!("{code}: {msg}"))
            } else {
                StoreError::Rejected(format!("{code}: {msg}"))
            }
        }
        // Dispatch failures, timeouts, broken responses: the store was not reached or did not answer.
        _ => StoreError::Unavailable(err_chain(&err)),
    }
}

fn err_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// True when the SDK error is a failed condition.
pub(crate) fn is_condition_failed<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

/// The outcome of a conditional write: `true` if applied, `false` if its
/// condition did not hold (an outcome, not an error).
pub(crate) fn applied<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failed(&e) => Ok(false),
        Err(e) => Err(classify(e)),
    }
}

/// Full table names.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Event records, by event id.
    pub events: String,
    /// Orders, by order id.
    pub orders: String,
    /// Stock, by SKU.
    pub inventory: String,
    /// Idempotency keys of the API.
    pub idempotency: String,
    /// Custom event buses, by name.
    pub buses: String,
    /// Rules, by bus and name.
    pub rules: String,
    /// Sluice queues, by name.
    pub queues: String,
    /// Topics, by name.
    pub topics: String,
    /// Subscriptions, by topic and id.
    pub subscriptions: String,
    /// Tasks, by id, with their indexes and outboxes.
    pub tasks: String,
    /// Uploaded files, by id.
    pub files: String,
    /// Archives of the bus, by bus and name.
    pub archives: String,
    /// Replays of archives, by bus and name.
    pub replays: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        Self {
            events: format!("{prefix}events"),
            orders: format!("{prefix}orders"),
            inventory: format!("{prefix}inventory"),
            idempotency: format!("{prefix}idempotency"),
            buses: format!("{prefix}buses"),
            rules: format!("{prefix}rules"),
            queues: format!("{prefix}queues"),
            topics: format!("{prefix}topics"),
            subscriptions: format!("{prefix}subscriptions"),
            tasks: format!("{prefix}tasks"),
            files: format!("{prefix}files"),
            archives: format!("{prefix}archives"),
            replays: format!("{prefix}replays"),
        }
    }
}

/// A handle on the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    tables: Tables,
    tables_ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Store {
    /// Builds a client for the configured endpoint (no request is made).
    pub async fn connect(config: &StoreConfig) -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&config.endpoint_url)
            .region(aws_config::Region::new(config.region.clone()))
            .credentials_provider(Credentials::new(
                config.access_key_id.clone(),
                config.secret_access_key.clone(),
                None,
                None,
                "sluice",
            ))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(config.timeout)
                    .connect_timeout(std::time::Duration::from_secs(2))
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .load()
            .await;
        let dynamo = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(instrument::StoreMetrics)
            .build();
        Self {
            client: Client::from_conf(dynamo),
            tables: Tables::new(&config.table_prefix),
            // Tables managed outside sluice are taken to exist.
            tables_ready: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
                !config.create_tables,
            )),
        }
    }

    /// Table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The SDK client, for what this crate does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Checks the store answers and every table exists (used by `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        if !self.tables_ready.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Unavailable("tables are not created yet".into()));
        }
        self.client
            .describe_table()
            .table_name(&self.tables.events)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// Reads one item by its partition key with a consistent read.
    pub(crate) async fn get(
        &self,
        table: &str,
        key: &str,
        value: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key(key, s(value))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item)
    }

    /// Every item of a table (a paged scan).
    pub(crate) async fn scan_all(&self, table: &str) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Creates every missing table and waits until it is active.
    pub async fn ensure_tables(&self) -> Result<(), StoreError> {
        schema::ensure(&self.client, &self.tables).await?;
        self.tables_ready
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// [`Store::ensure_tables`], retried every second while the store is
    /// unavailable, until it succeeds, fails for good, or `stop` fires.
    pub async fn ensure_tables_retrying(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<(), StoreError> {
        loop {
            match self.ensure_tables().await {
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "store not ready; retrying table creation");
                    tokio::select! {
                        _ = stop.cancelled() => return Err(e),
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                }
                other => return other,
            }
        }
    }
}

/// Item helpers.
pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, key: &str) -> Option<T> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn epoch_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
