//! What is published on `notify.<topic>`: the contract between whoever
//! publishes to a topic (the transformer's `topic` targets, the topic
//! publish API) and the notifier that fans it out to subscriptions.
//!
//! The NATS message carries `Nats-Msg-Id` (the publish's stable id, which
//! becomes the SNS `MessageId`), the W3C trace context, and this JSON body.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::FieldError;

/// One message published to a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMessage {
    /// The message: text, often JSON (for a rule's target, the target's input).
    pub message: String,
    /// Optional subject (email subject line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// SNS message attributes: name → `{"Type": ..., "Value": ...}`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub message_attributes: serde_json::Map<String, serde_json::Value>,
    /// Who published it, e.g. `rule/default/orders/target/notify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// SNS's limit on a message with its attributes: 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SNS's limit on message attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;
/// SNS's limit on a subject.
pub const MAX_SUBJECT: usize = 100;
/// SNS's limit on an attribute name.
pub const MAX_ATTRIBUTE_NAME: usize = 256;
/// SNS's limit on messages in one batch.
pub const MAX_BATCH: usize = 10;

/// One message attribute, in SNS's notification shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// `String`, `String.Array`, `Number` or `Binary`.
    #[serde(rename = "Type")]
    #[schema(pattern = "^(String|String\\.Array|Number|Binary)$")]
    pub kind: String,
    /// The value as text: a JSON array for `String.Array`, base64 for `Binary`.
    #[serde(rename = "Value")]
    #[schema(min_length = 1)]
    pub value: String,
}

/// What a publisher sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    /// The message.
    pub message: String,
    /// Optional subject.
    pub subject: Option<String>,
    /// Attributes by name.
    pub attributes: BTreeMap<String, Attribute>,
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Checks a publish as SNS does: a non-empty message; a subject of 1 to 100
/// printable ASCII characters without line breaks, not starting with a
/// space; up to 10 attributes with
/// valid names, types and values; 256 KiB in all (message, and each
/// attribute's name, type and value).
pub fn check_publish(p: &Publish) -> Result<(), FieldError> {
    if p.message.is_empty() {
        return Err(FieldError::new("/message", "must not be empty"));
    }
    if let Some(subject) = &p.subject {
        if subject.is_empty() || subject.len() > MAX_SUBJECT {
            return Err(FieldError::new(
                "/subject",
                format!("must be 1 to {MAX_SUBJECT} characters"),
            ));
        }
        if !subject.bytes().all(|b| (0x20..0x7f).contains(&b)) || subject.starts_with(' ') {
            return Err(FieldError::new(
                "/subject",
                "must be printable ASCII without line breaks, starting with a letter, digit or punctuation mark",
            ));
        }
    }
    if p.attributes.len() > MAX_ATTRIBUTES {
        return Err(FieldError::new(
            "/message_attributes",
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    for (name, attr) in &p.attributes {
        let at = format!("/message_attributes/{}", escape(name));
        check_attribute_name(name).map_err(|e| FieldError::new(&at, e))?;
        check_attribute(attr).map_err(|(field, e)| FieldError::new(format!("{at}/{field}"), e))?;
    }
    let size = publish_size(p);
    if size > MAX_MESSAGE_BYTES {
        return Err(FieldError::new(
            "",
            format!(
                "the message and its attributes take {size} bytes; at most {MAX_MESSAGE_BYTES}"
            ),
        ));
    }
    Ok(())
}

/// SNS's attribute names: 1 to 256 of `A-Z a-z 0-9 _ - .`, no leading,
/// trailing or doubled `.`, not starting with `AWS.` or `Amazon.`.
pub fn check_attribute_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_ATTRIBUTE_NAME {
        return Err(format!(
            "an attribute name must be 1 to {MAX_ATTRIBUTE_NAME} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err("an attribute name may hold only letters, digits, '_', '-' and '.'".into());
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err("an attribute name may not start or end with '.', or hold '..'".into());
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("aws.") || lower.starts_with("amazon.") {
        return Err("attribute names starting with 'AWS.' or 'Amazon.' are reserved".into());
    }
    Ok(())
}

/// Checks one attribute's type and value; the error names the field (`Type`
/// or `Value`).
fn check_attribute(a: &Attribute) -> Result<(), (&'static str, String)> {
    let value = |e: &str| Err(("Value", e.to_string()));
    if a.value.is_empty() {
        return value("must not be empty");
    }
    match a.kind.as_str() {
        "String" => Ok(()),
        "String.Array" => match serde_json::from_str::<serde_json::Value>(&a.value) {
            Ok(serde_json::Value::Array(items))
                if items.iter().all(|v| !v.is_array() && !v.is_object()) =>
            {
                Ok(())
            }
            _ => value(
                "a String.Array value must be a JSON array of strings, numbers, booleans or null",
            ),
        },
        "Number" => check_number(&a.value).map_err(|e| ("Value", e)),
        "Binary" => match base64::engine::general_purpose::STANDARD.decode(&a.value) {
            Ok(_) => Ok(()),
            Err(_) => value("a Binary value must be base64"),
        },
        _ => Err((
            "Type",
            "must be String, String.Array, Number or Binary".into(),
        )),
    }
}

/// SNS's numbers: up to 38 significant digits, a magnitude from 10^-128
/// to 10^126 (or zero). Judged on the decimal text, not on an `f64`, which
/// would round 1E-400 to zero.
fn check_number(text: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "{text:?} is not a number SNS accepts (up to 38 digits, magnitude 1E-128 to 1E126)"
        ))
    };
    let t = text.trim();
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => match e.parse::<i64>() {
            Ok(e) => (m, e),
            Err(_) => return bad(),
        },
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return bad();
    }
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let Some(first) = digits.iter().position(|&d| d != b'0') else {
        return Ok(()); // zero
    };
    let last = digits.iter().rposition(|&d| d != b'0').unwrap_or(first);
    if last - first + 1 > 38 {
        return bad();
    }
    // The power of ten of the first significant digit.
    let magnitude = exponent + int.len() as i64 - 1 - first as i64;
    let exactly_one = last == first && digits[first] == b'1';
    if !(-128..=126).contains(&magnitude) || (magnitude == 126 && !exactly_one) {
        return bad();
    }
    Ok(())
}

/// The bytes a publish counts against SNS's 256 KiB: the message and each
/// attribute's name, type and value.
pub fn publish_size(p: &Publish) -> usize {
    p.message.len()
        + p.attributes
            .iter()
            .map(|(n, a)| n.len() + a.kind.len() + a.value.len())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(message: &str, attrs: &[(&str, &str, &str)]) -> Publish {
        Publish {
            message: message.into(),
            subject: None,
            attributes: attrs
                .iter()
                .map(|(n, t, v)| {
                    (
                        (*n).to_string(),
                        Attribute {
                            kind: (*t).into(),
                            value: (*v).into(),
                        },
                    )
                })
                .collect(),
        }
    }

    fn pointer_of(p: &Publish) -> Option<String> {
        check_publish(p).err().map(|e| e.pointer)
    }

    #[test]
    fn publishes_sns_accepts_pass() {
        let ok = publish(
            "hello",
            &[
                ("colour", "String", "red"),
                ("sizes", "String.Array", r#"["s", 2, true, null]"#),
                ("price", "Number", "-12.50e3"),
                ("zero", "Number", "0.000"),
                ("tiny", "Number", "-1e-128"),
                ("huge", "Number", "1E126"),
                (
                    "long",
                    "Number",
                    "12345678901234567890123456789012345678000",
                ),
                ("frac", "Number", ".5"),
                ("blob", "Binary", "aGVsbG8="),
                ("a.b-c_d", "String", "x"),
            ],
        );
        assert_eq!(check_publish(&ok), Ok(()));
        let mut with_subject = publish("m", &[]);
        with_subject.subject = Some("Order 42 shipped!".into());
        assert_eq!(check_publish(&with_subject), Ok(()));
    }

    #[test]
    fn publishes_sns_refuses_name_the_field() {
        let cases: &[(Publish, &str)] = &[
            (publish("", &[]), "/message"),
            (
                publish("m", &[("c", "Colour", "red")]),
                "/message_attributes/c/Type",
            ),
            (
                publish("m", &[("c", "String", "")]),
                "/message_attributes/c/Value",
            ),
            (
                publish("m", &[("c", "Number", "twelve")]),
                "/message_attributes/c/Value",
            ),
            (
                publish("m", &[("c", "Number", "1e200")]),
                "/message_attributes/c/Value",
            ),
            (
                publish(
                    "m",
                    &[("c", "Number", "1234567890123456789012345678901234567890")],
                ),
                "/message_attributes/c/Value",
            ),
            (
                publish("m", &[("c", "String.Array", "[1, [2]]")]),
                "/message_attributes/c/Value",
            ),
            (
                publish("m", &[("c", "String.Array", "red")]),
                "/message_attributes/c/Value",
            ),
            (
                publish("m", &[("c", "Binary", "not base64!")]),
                "/message_attributes/c/Value",
            ),
            (
                publish("m", &[("AWS.x", "String", "v")]),
                "/message_attributes/AWS.x",
            ),
            (
                publish("m", &[("amazon.x", "String", "v")]),
                "/message_attributes/amazon.x",
            ),
            (
                publish("m", &[(".x", "String", "v")]),
                "/message_attributes/.x",
            ),
            (
                publish("m", &[("a..b", "String", "v")]),
                "/message_attributes/a..b",
            ),
            (
                publish("m", &[("a/b", "String", "v")]),
                "/message_attributes/a~1b",
            ),
            (publish("m", &[("", "String", "v")]), "/message_attributes/"),
        ];
        for (p, pointer) in cases {
            assert_eq!(pointer_of(p).as_deref(), Some(*pointer), "{p:?}");
        }
        let eleven: Vec<(String, String, String)> = (0..11)
            .map(|i| (format!("a{i}"), "String".into(), "v".into()))
            .collect();
        let refs: Vec<(&str, &str, &str)> = eleven
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        assert_eq!(
            pointer_of(&publish("m", &refs)).as_deref(),
            Some("/message_attributes")
        );
        for subject in ["", "line\nbreak", "é", " leading space", &"s".repeat(101)] {
            let mut p = publish("m", &[]);
            p.subject = Some(subject.to_string());
            assert_eq!(pointer_of(&p).as_deref(), Some("/subject"), "{subject:?}");
        }
    }

    #[test]
    fn the_256_kib_limit_counts_the_attributes() {
        let at_limit = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(check_publish(&publish(&at_limit, &[])), Ok(()));
        let over = publish(
            &"x".repeat(MAX_MESSAGE_BYTES - 5),
            &[("c", "String", "red")],
        );
        assert_eq!(pointer_of(&over).as_deref(), Some(""));
    }

    #[test]
    fn a_minimal_message_is_just_its_text() {
        let m = TopicMessage {
            message: "hi".into(),
            subject: None,
            message_attributes: Default::default(),
            origin: None,
        };
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"message":"hi"}"#);
        let back: TopicMessage = serde_json::from_str(r#"{"message":"hi"}"#).unwrap();
        assert_eq!(back, m);
    }
}
