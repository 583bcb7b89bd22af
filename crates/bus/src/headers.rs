//! Header names sluice puts on NATS messages (besides `Nats-Msg-Id` and
//! the W3C trace context).

/// The principal that submitted the message through the gateway.
pub const PRINCIPAL: &str = "Sluice-Principal";
/// The gateway request id.
pub const REQUEST_ID: &str = "Sluice-Request-Id";
/// Dead letter: why it failed.
pub const DLQ_REASON: &str = "Sluice-Dlq-Reason";
/// Dead letter: delivery attempts made.
pub const DLQ_ATTEMPTS: &str = "Sluice-Dlq-Attempts";
/// Dead letter: subject it was consumed from.
pub const DLQ_SUBJECT: &str = "Sluice-Dlq-Subject";
/// Dead letter: the original `Nats-Msg-Id`.
pub const DLQ_MSG_ID: &str = "Sluice-Dlq-Msg-Id";
/// Dead letter: when the original was accepted (RFC 3339).
pub const DLQ_ACCEPTED_AT: &str = "Sluice-Dlq-Accepted-At";
/// Dead letter: when it was dead-lettered (RFC 3339).
pub const DLQ_FAILED_AT: &str = "Sluice-Dlq-Failed-At";
/// Dead letter: whether the failure was terminal (`true`) or retries ran out (`false`).
pub const DLQ_TERMINAL: &str = "Sluice-Dlq-Terminal";
/// Dead letter: the last response of a target (status and the start of the body).
pub const DLQ_RESPONSE: &str = "Sluice-Dlq-Response";
/// Dead letter of the file pipeline: the file.
pub const FILE_ID: &str = "Sluice-File-Id";
/// Dead letter of the file pipeline: the step that failed.
pub const FILE_STEP: &str = "Sluice-File-Step";
/// Dead letter of a workflow: the workflow.
pub const WORKFLOW_ID: &str = "Sluice-Workflow-Id";
/// Redriven message: the dead-letter sequence it came from.
pub const REDRIVEN_FROM: &str = "Sluice-Redriven-From";

/// Headers a dead letter adds, removed again when it is redriven.
pub const DLQ_HEADERS: &[&str] = &[
    DLQ_REASON,
    DLQ_ATTEMPTS,
    DLQ_SUBJECT,
    DLQ_MSG_ID,
    DLQ_ACCEPTED_AT,
    DLQ_FAILED_AT,
    DLQ_TERMINAL,
    DLQ_RESPONSE,
];

/// The bus an event was put on (absent: `default`).
pub const EVENT_BUS: &str = "Sluice-Event-Bus";
/// Delivery: its stable id (event, rule and target), the receiver's de-duplication key.
pub const DELIVERY_ID: &str = "Sluice-Delivery-Id";
/// Delivery: the event's id.
pub const EVENT_ID: &str = "Sluice-Event-Id";
/// Delivery: the bus of the rule.
pub const BUS: &str = "Sluice-Bus";
/// Delivery: the rule that matched.
pub const RULE: &str = "Sluice-Rule";
/// Delivery: the target's id within the rule.
pub const TARGET: &str = "Sluice-Target";
/// A notifier copy's topic.
pub const TOPIC: &str = "Sluice-Topic";
/// A notifier copy's subscription id.
pub const SUBSCRIPTION: &str = "Sluice-Subscription";
/// A notifier copy's message id (the topic message it copies).
pub const MESSAGE_ID: &str = "Sluice-Message-Id";
/// What a subscription delivery is: `Notification` or `SubscriptionConfirmation`.
pub const MESSAGE_TYPE: &str = "Sluice-Message-Type";
/// The subject line of a topic message (emails use it).
pub const MESSAGE_SUBJECT: &str = "Sluice-Message-Subject";
/// A FIFO topic message's group.
pub const MESSAGE_GROUP_ID: &str = "Sluice-Message-Group-Id";
/// A FIFO topic message's de-duplication id.
pub const DEDUPLICATION_ID: &str = "Sluice-Deduplication-Id";
/// A FIFO topic message's sequence number (its place in the FIFO stream).
pub const SEQUENCE_NUMBER: &str = "Sluice-Sequence-Number";
/// A raw queue delivery's SNS message attributes, as compact JSON
/// (`{"name": {"Type": ..., "Value": ...}}`).
pub const MESSAGE_ATTRIBUTES: &str = "Sluice-Message-Attributes";
