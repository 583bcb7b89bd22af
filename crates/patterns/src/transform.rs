//! EventBridge input transformation: `InputPath` and `InputTransformer`
//! (`InputPathsMap` + `InputTemplate`), rendered as AWS renders them:
//!
//! - a placeholder outside quotes becomes the value as JSON (a string gets
//!   its quotes); inside quotes, a string or number becomes its text;
//! - an object or array inside quotes makes a JSON template invalid (AWS
//!   silently drops such an event; here it is an error); in a template that
//!   is one quoted string it is written as JSON with its quotes removed;
//! - a path that selects nothing renders as empty text (`""` as a JSON value);
//! - predefined variables: `aws.events.rule-name`, `aws.events.rule-arn`,
//!   `aws.events.event.ingestion-time`, `aws.events.event` (the event
//!   without `detail`, `detail-type` written `detailType`) and
//!   `aws.events.event.json` (the whole event).
//!
//! Limits are EventBridge's: 100 paths, names `[A-Za-z0-9_-]{1,256}`,
//! paths up to 256 characters, templates up to 8192; every placeholder must
//! be defined.

use serde_json::{Map, Value};

use crate::error::{PatternError, Pointer};

/// Most entries in `InputPathsMap`.
pub const MAX_PATHS: usize = 100;
/// Longest `InputTemplate`.
pub const MAX_TEMPLATE: usize = 8192;
/// Longest JSONPath.
pub const MAX_PATH_LEN: usize = 256;
/// Longest rendered output (EventBridge's event size): a template that
/// repeats a large value cannot make a delivery of any size.
pub const MAX_OUTPUT: usize = 256 * 1024;

const PREDEFINED: &[&str] = &[
    "aws.events.rule-name",
    "aws.events.rule-arn",
    "aws.events.event.ingestion-time",
    "aws.events.event",
    "aws.events.event.json",
];

/// Facts about the rule and delivery that predefined variables expose.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The rule's name.
    pub rule_name: String,
    /// The rule's ARN-like identifier.
    pub rule_arn: String,
    /// When the bus received the event (RFC 3339).
    pub ingestion_time: String,
}

/// Why an event could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A JSONPath of the subset EventBridge supports: `$`, `.name`, `['name']`, `[n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(Vec<Seg>);

impl JsonPath {
    /// Parses a path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_PATH_LEN {
            return Err(format!("path is longer than {MAX_PATH_LEN} characters"));
        }
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| format!("{text:?} must start with $"))?;
        let mut segs = Vec::new();
        let b = rest.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < b.len() && b[end] != b'.' && b[end] != b'[' {
                        end += 1;
                    }
                    if end == start {
                        return Err(format!("empty name in {text:?}"));
                    }
                    segs.push(Seg::Key(rest[start..end].to_string()));
                    i = end;
                }
                b'[' => {
                    let close = rest[i..]
                        .find(']')
                        .map(|j| i + j)
                        .ok_or_else(|| format!("unclosed [ in {text:?}"))?;
                    let inner = &rest[i + 1..close];
                    if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                        segs.push(Seg::Key(q.to_string()));
                    } else {
                        let n = inner
                            .parse()
                            .map_err(|_| format!("[{inner}] is not an index in {text:?}"))?;
                        segs.push(Seg::Index(n));
                    }
                    i = close + 1;
                }
                _ => return Err(format!("unexpected {:?} in {text:?}", b[i] as char)),
            }
        }
        Ok(Self(segs))
    }

    /// The value the path selects, if any.
    pub fn select<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        let mut v = value;
        for seg in &self.0 {
            v = match seg {
                Seg::Key(k) => v.get(k)?,
                Seg::Index(i) => v.get(*i)?,
            };
        }
        Some(v)
    }
}

/// A target's input: the whole event, `InputPath`, or `InputTransformer`.
#[derive(Debug, Clone)]
pub enum Input {
    /// `InputPath`: the selected value, as JSON.
    Path(JsonPath),
    /// `InputTransformer`.
    Transformer(InputTransformer),
}

impl Input {
    /// Parses `{"InputPath": "$.detail"}` or `{"InputPathsMap": {...}, "InputTemplate": "..."}`.
    pub fn parse(config: &Value) -> Result<Self, PatternError> {
        let root = Pointer::Root;
        let Value::Object(map) = config else {
            return Err(PatternError::new(&root, "must be an object"));
        };
        if let Some(key) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "InputPath" | "InputPathsMap" | "InputTemplate"))
        {
            return Err(PatternError::new(
                &root.key(key),
                format!("unknown field {key:?}"),
            ));
        }
        match (map.get("InputPath"), map.contains_key("InputTemplate")) {
            (Some(_), true) => Err(PatternError::new(
                &root,
                "Only one of InputPath or InputTransformer may be given",
            )),
            (Some(Value::String(p)), false) => JsonPath::parse(p)
                .map(Input::Path)
                .map_err(|e| PatternError::new(&root.key("InputPath"), e)),
            (Some(_), false) => Err(PatternError::new(
                &root.key("InputPath"),
                "must be a string",
            )),
            (None, _) => InputTransformer::parse(map).map(Input::Transformer),
        }
    }

    /// Renders the target input for `event`.
    pub fn render(&self, event: &Value, ctx: &Context) -> Result<String, RenderError> {
        match self {
            Input::Path(p) => Ok(p.select(event).map(Value::to_string).unwrap_or_default()),
            Input::Transformer(t) => t.render(event, ctx),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Var { name: String, quoted: bool },
}

fn too_long() -> RenderError {
    RenderError(format!(
        "the rendered input is longer than {MAX_OUTPUT} bytes"
    ))
}

/// `InputPathsMap` + `InputTemplate`, compiled.
#[derive(Debug, Clone)]
pub struct InputTransformer {
    paths: Vec<(String, JsonPath)>,
    pieces: Vec<Piece>,
    /// The template is JSON (an object or array), so the output must be too.
    json: bool,
}

impl InputTransformer {
    fn parse(map: &Map<String, Value>) -> Result<Self, PatternError> {
        let root = Pointer::Root;
        let mut paths = Vec::new();
        match map.get("InputPathsMap") {
            None => {}
            Some(Value::Object(m)) => {
                let at = root.key("InputPathsMap");
                if m.len() > MAX_PATHS {
                    return Err(PatternError::new(
                        &at,
                        format!("at most {MAX_PATHS} entries"),
                    ));
                }
                for (name, path) in m {
                    let here = at.key(name);
                    let valid_name = !name.is_empty()
                        && name.len() <= 256
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if !valid_name {
                        return Err(PatternError::new(
                            &here,
                            "names are 1 to 256 of A-Z a-z 0-9 _ -",
                        ));
                    }
                    let Value::String(p) = path else {
                        return Err(PatternError::new(&here, "must be a JSONPath string"));
                    };
                    paths.push((
                        name.clone(),
                        JsonPath::parse(p).map_err(|e| PatternError::new(&here, e))?,
                    ));
                }
            }
            Some(_) => {
                return Err(PatternError::new(
                    &root.key("InputPathsMap"),
                    "must be an object",
                ))
            }
        }
        let at = root.key("InputTemplate");
        let template = match map.get("InputTemplate") {
            Some(Value::String(t)) if !t.is_empty() && t.len() <= MAX_TEMPLATE => t,
            Some(Value::String(_)) => {
                return Err(PatternError::new(
                    &at,
                    format!("must be 1 to {MAX_TEMPLATE} characters"),
                ))
            }
            Some(_) => return Err(PatternError::new(&at, "must be a string")),
            None => return Err(PatternError::new(&root, "InputTemplate is required")),
        };
        let pieces = split_template(template);
        for piece in &pieces {
            if let Piece::Var { name, .. } = piece {
                if !PREDEFINED.contains(&name.as_str()) && !paths.iter().any(|(n, _)| n == name) {
                    return Err(PatternError::new(
                        &at,
                        format!("InputTemplate contains invalid placeholder {name}."),
                    ));
                }
            }
        }
        let trimmed = template.trim();
        Ok(Self {
            paths,
            pieces,
            json: trimmed.starts_with('{') || trimmed.starts_with('['),
        })
    }

    /// Renders the template for `event`.
    pub fn render(&self, event: &Value, ctx: &Context) -> Result<String, RenderError> {
        let mut out = String::new();
        for piece in &self.pieces {
            let (name, quoted) = match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::Var { name, quoted } => (name, *quoted),
            };
            if out.len() > MAX_OUTPUT {
                return Err(too_long());
            }
            let value = self.value_of(name, event, ctx);
            match (value, quoted) {
                (None, false) => out.push_str("\"\""),
                (None, true) => {}
                (Some(Value::String(s)), true) => out.push_str(&s),
                (Some(v @ (Value::Object(_) | Value::Array(_))), true) => {
                    if self.json {
                        return Err(RenderError(format!(
                            "<{name}> is an object or array inside a quoted string: the output would not be JSON, and EventBridge drops such events"
                        )));
                    }
                    out.push_str(&v.to_string().replace('"', ""));
                }
                (Some(v), true) => out.push_str(&v.to_string()),
                (Some(v), false) => out.push_str(&v.to_string()),
            }
        }
        if out.len() > MAX_OUTPUT {
            return Err(too_long());
        }
        if self.json && serde_json::from_str::<Value>(&out).is_err() {
            return Err(RenderError(
                "the rendered template is not valid JSON; EventBridge drops such events".into(),
            ));
        }
        Ok(out)
    }

    fn value_of(&self, name: &str, event: &Value, ctx: &Context) -> Option<Value> {
        match name {
            "aws.events.rule-name" => Some(Value::String(ctx.rule_name.clone())),
            "aws.events.rule-arn" => Some(Value::String(ctx.rule_arn.clone())),
            "aws.events.event.ingestion-time" => Some(Value::String(ctx.ingestion_time.clone())),
            "aws.events.event.json" => Some(event.clone()),
            "aws.events.event" => {
                let mut e = event.as_object().cloned().unwrap_or_default();
                e.remove("detail");
                if let Some(dt) = e.remove("detail-type") {
                    e.insert("detailType".into(), dt);
                }
                Some(Value::Object(e))
            }
            _ => self
                .paths
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, p)| p.select(event))
                .cloned(),
        }
    }
}

/// Splits a template into text and `<name>` placeholders, noting whether
/// each placeholder sits inside a JSON string.
fn split_template(t: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = t;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            if let Some(end) = rest.find('>') {
                let name = &rest[1..end];
                let is_name = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if is_name {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var {
                        name: name.to_string(),
                        quoted: in_string,
                    });
                    rest = &rest[end + 1..];
                    continue;
                }
            }
        }
        if escaped {
            escaped = false;
        } else if c == '\\' && in_string {
            escaped = true;
        } else if c == '"' {
            in_string = !in_string;
        }
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "version": "0", "id": "e1", "detail-type": "core.update-account-command", "source": "s",
            "account": "1", "time": "2026-01-01T00:00:00Z", "region": "local", "resources": [],
            "detail": {"command": "update-account",
                "payload": {"acc_id": "0a787ecb-4015", "sf_id": "baz"},
                "listsingle": ["HIGH"], "listmulti": ["ACTIVE", "INACTIVE"], "valid": true, "n": 5}
        })
    }

    fn render(template: &str) -> Result<String, RenderError> {
        let t = Input::parse(&json!({
            "InputPathsMap": {"userId": "$.detail.payload.acc_id", "payload": "$.detail.payload",
                "missing": "$.detail.awsAccountId", "listsingle": "$.detail.listsingle",
                "listmulti": "$.detail.listmulti", "valid": "$.detail.valid", "command": "$.detail.command",
                "detail-type": "$.detail-type", "n": "$.detail.n", "first": "$.detail.listmulti[0]"},
            "InputTemplate": template
        }))
        .unwrap();
        t.render(
            &event(),
            &Context {
                rule_name: "r1".into(),
                ..Context::default()
            },
        )
    }

    fn json_of(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn a_template_cannot_render_without_bound() {
        let t = Input::parse(&json!({
            "InputPathsMap": {"big": "$.detail.big"},
            "InputTemplate": "<big><big><big><big><big><big><big><big><big><big>"
        }))
        .unwrap();
        let event = json!({"detail": {"big": "x".repeat(60_000)}});
        let err = t.render(&event, &Context::default()).unwrap_err();
        assert!(err.0.contains("longer than"), "{err}");
    }

    #[test]
    fn renders_like_eventbridge() {
        assert_eq!(
            json_of(&render(r#"{"id" : <userId>}"#).unwrap()),
            json!({"id": "0a787ecb-4015"})
        );
        assert_eq!(
            json_of(&render(r#"{"id" : "<userId>"}"#).unwrap()),
            json!({"id": "0a787ecb-4015"})
        );
        assert_eq!(
            json_of(&render(r#"{"multi": "users/<userId>/second/<userId>"}"#).unwrap()),
            json!({"multi": "users/0a787ecb-4015/second/0a787ecb-4015"})
        );
        assert_eq!(
            json_of(&render(r#"{"bod": <payload>, "s": <listsingle>}"#).unwrap()),
            json!({"bod": {"acc_id": "0a787ecb-4015", "sf_id": "baz"}, "s": ["HIGH"]})
        );
        assert_eq!(
            json_of(&render(r#"{"bod": [<userId>, "hardcoded"]}"#).unwrap()),
            json!({"bod": ["0a787ecb-4015", "hardcoded"]})
        );
        assert_eq!(
            json_of(&render(r#"{"command": <missing>}"#).unwrap()),
            json!({"command": ""})
        );
        assert_eq!(
            json_of(&render(r#"{"n": <n>, "first": <first>}"#).unwrap()),
            json!({"n": 5, "first": "ACTIVE"})
        );
        assert!(render(r#"{"payload": "<payload>"}"#).is_err());
        assert_eq!(
            render(r#""Event of <detail-type> type, info <command>""#).unwrap(),
            r#""Event of core.update-account-command type, info update-account""#
        );
        assert_eq!(
            render(r#""Payload of <payload>""#).unwrap(),
            r#""Payload of {acc_id:0a787ecb-4015,sf_id:baz}""#
        );
        assert_eq!(
            render(r#""<listmulti> items""#).unwrap(),
            r#""[ACTIVE,INACTIVE] items""#
        );
        assert_eq!(
            render(r#""Command is <valid>!""#).unwrap(),
            r#""Command is true!""#
        );
        assert_eq!(render(r#""a <missing> b""#).unwrap(), r#""a  b""#);
        assert_eq!(
            render("<command> is in state <valid>").unwrap(),
            r#""update-account" is in state true"#
        );
        let e =
            json_of(&render(r#"{"e": <aws.events.event>, "r": <aws.events.rule-name>}"#).unwrap());
        assert_eq!(e["e"]["detailType"], "core.update-account-command");
        assert!(e["e"].get("detail").is_none());
        assert_eq!(e["r"], "r1");
    }

    #[test]
    fn input_path_selects_a_value_as_json() {
        let p = Input::parse(&json!({"InputPath": "$.detail.payload.sf_id"})).unwrap();
        assert_eq!(p.render(&event(), &Context::default()).unwrap(), r#""baz""#);
        let p = Input::parse(&json!({"InputPath": "$.detail.listmulti[1]"})).unwrap();
        assert_eq!(
            p.render(&event(), &Context::default()).unwrap(),
            r#""INACTIVE""#
        );
    }

    #[test]
    fn configuration_mistakes_are_rejected_up_front() {
        let e = |v: Value| Input::parse(&v).unwrap_err();
        assert!(e(json!({"InputTemplate": "<nope>"}))
            .message
            .contains("invalid placeholder nope"));
        assert!(
            e(json!({"InputPathsMap": {"a.b": "$.x"}, "InputTemplate": "x"}))
                .message
                .contains("names are")
        );
        assert!(
            e(json!({"InputPathsMap": {"a": "detail"}, "InputTemplate": "x"}))
                .message
                .contains("must start with $")
        );
        assert!(e(json!({"InputPath": "$.a", "InputTemplate": "x"}))
            .message
            .contains("Only one"));
        assert!(e(json!({"InputTemplate": ""}))
            .message
            .contains("1 to 8192"));
        assert!(e(json!({"Bogus": 1})).message.contains("unknown field"));
        let many: Map<String, Value> = (0..101).map(|i| (format!("k{i}"), json!("$.a"))).collect();
        assert!(e(json!({"InputPathsMap": many, "InputTemplate": "x"}))
            .message
            .contains("at most 100"));
    }
}
