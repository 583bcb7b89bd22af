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
];
