//! One pass over an object's bytes, chunk by chunk, holding at most one
//! row: its size, SHA-256, the content type sniffed from the bytes (not
//! trusted from the name or the upload), and for CSV and JSON lines the
//! rows, each checked against the declared JSON Schema. Memory stays
//! bounded by the longest row allowed, whatever the object's size.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Bytes looked at to sniff the content type.
const SNIFF_LEN: usize = 8192;
/// Most fields a CSV row may have.
const MAX_FIELDS: usize = 10_000;

/// CSV.
pub const CSV: &str = "text/csv";
/// JSON lines.
pub const JSON_LINES: &str = "application/x-ndjson";
/// Whatever is not recognised.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// Text that is neither CSV nor JSON.
pub const TEXT: &str = "text/plain";
/// A file with no bytes.
pub const EMPTY: &str = "application/x-empty";

/// The row formats sluice reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON value per line.
    JsonLines,
}

/// The format a declared content type names, if it is one sluice reads
/// (`text/csv`, `application/x-ndjson` and its aliases; parameters such as
/// `; charset=utf-8` are ignored).
pub fn format_of(content_type: &str) -> Option<Format> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/csv" | "application/csv" => Some(Format::Csv),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/json-lines"
        | "application/jsonlines" => Some(Format::JsonLines),
        _ => None,
    }
}

/// Where a file broke its declaration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invalid {
    /// The 1-based data row, when the problem is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl Invalid {
    fn at(row: u64, reason: impl Into<String>) -> Self {
        Self {
            row: Some(row),
            reason: reason.into(),
        }
    }
    fn whole(reason: impl Into<String>) -> Self {
        Self {
            row: None,
            reason: reason.into(),
        }
    }
}

/// What an inspection found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Inspection {
    /// Bytes read.
    pub size: u64,
    /// Hex SHA-256 of the bytes (of those read, when invalid).
    pub sha256: String,
    /// Sniffed from the bytes.
    pub content_type: String,
    /// Data rows, for CSV and JSON lines.
    pub rows: Option<u64>,
    /// The first problem, if any; reading stops there.
    pub invalid: Option<Invalid>,
}

/// A compiled JSON Schema with the column types it gives CSV cells.
pub struct Schema {
    validator: jsonschema::Validator,
    types: Map<String, Value>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").finish_non_exhaustive()
    }
}

impl Schema {
    /// Compiles a JSON Schema (any draft `jsonschema` knows; no remote
    /// references are fetched). An error says what is wrong with it.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
        let types = schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Self { validator, types })
    }

    /// The first violation of `row`, as `path: message`.
    pub fn check(&self, row: &Value) -> Result<(), String> {
        match self.validator.iter_errors(row).next() {
            None => Ok(()),
            Some(e) => {
                let path = e.instance_path().to_string();
                Err(if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                })
            }
        }
    }

    /// A CSV cell as the JSON value the schema's column type asks for
    /// (an integer, number or boolean column's cell is converted when it
    /// can be; anything else stays a string, for the schema to judge).
    fn cell(&self, column: &str, text: &str) -> Value {
        cell_value(self.types.get(column), text)
    }
}

/// A CSV cell as the JSON value a property schema's `type` asks for.
pub fn cell_value(property: Option<&Value>, text: &str) -> Value {
    let kind = property
        .and_then(|p| p.get("type"))
        .and_then(|t| match t {
            Value::String(s) => Some(s.as_str()),
            Value::Array(a) => a.iter().filter_map(Value::as_str).find(|s| *s != "null"),
            _ => None,
        })
        .unwrap_or("string");
    match kind {
        "integer" => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        "number" => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or_else(|| Value::String(text.into())),
        "boolean" => match text.trim() {
            "true" | "TRUE" | "True" => Value::Bool(true),
            "false" | "FALSE" | "False" => Value::Bool(false),
            _ => Value::String(text.into()),
        },
        _ => Value::String(text.into()),
    }
}

/// The content type of a file from its first bytes; `complete` when they
/// are the whole file.
pub fn sniff(head: &[u8], complete: bool) -> &'static str {
    if head.is_empty() {
        return EMPTY;
    }
    if let Some(t) = infer::get(head) {
        return t.mime_type();
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A character cut at the end of the sniffed bytes.
        Err(e) if !complete && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return OCTET_STREAM,
    };
    if text.contains('\0') {
        return OCTET_STREAM;
    }
    let start = text.trim_start();
    if start.starts_with('{') || start.starts_with('[') {
        // The first line decides: later lines are the parser's to judge
        // (and to report by row).
        let (first, cut) = match start.split_once('\n') {
            Some((line, _)) => (line, false),
            None => (start, !complete),
        };
        let parses = serde_json::from_str::<serde::de::IgnoredAny>(first.trim_end()).is_ok();
        if start.starts_with('[')
            && complete
            && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
        {
            return "application/json";
        }
        return if parses || (cut && start.starts_with('{')) {
            JSON_LINES
        } else {
            TEXT
        };
    }
    let first = start.lines().next().unwrap_or_default();
    if first.contains(',') {
        CSV
    } else {
        TEXT
    }
}

/// The rows of a CSV file, fed in chunks.
pub struct CsvRows {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    out_len: usize,
    ends_len: usize,
    max_row: usize,
    header: Option<Vec<String>>,
    rows: u64,
}

impl std::fmt::Debug for CsvRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvRows")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl CsvRows {
    /// A reader allowing rows up to `max_row` bytes.
    pub fn new(max_row: usize) -> Self {
        Self {
            reader: csv_core::Reader::new(),
            out: vec![0; 4096.min(max_row)],
            ends: vec![0; 64],
            out_len: 0,
            ends_len: 0,
            max_row,
            header: None,
            rows: 0,
        }
    }

    /// The header, once read.
    pub fn header(&self) -> Option<&[String]> {
        self.header.as_deref()
    }

    /// Data rows so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Feeds `input` (empty: the end of the file) and calls `row` with
    /// each complete data row's number and cells.
    pub fn feed<F>(&mut self, mut input: &[u8], row: &mut F) -> Result<(), Invalid>
    where
        F: FnMut(u64, &[String], &[&str]) -> Result<(), Invalid>,
    {
        let eof = input.is_empty();
        loop {
            let (res, nin, nout, nend) = self.reader.read_record(
                input,
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            input = &input[nin..];
            self.out_len += nout;
            self.ends_len += nend;
            match res {
                csv_core::ReadRecordResult::InputEmpty => {
                    if !eof {
                        return Ok(());
                    }
                }
                csv_core::ReadRecordResult::OutputFull => {
                    if self.out.len() >= self.max_row {
                        return Err(Invalid::at(
                            self.rows + 1,
                            format!("is longer than {} bytes", self.max_row),
                        ));
                    }
                    let len = (self.out.len() * 2).min(self.max_row);
                    self.out.resize(len, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= MAX_FIELDS {
                        return Err(Invalid::at(
                            self.rows + 1,
                            format!("has more than {MAX_FIELDS} fields"),
                        ));
                    }
                    let len = (self.ends.len() * 2).min(MAX_FIELDS);
                    self.ends.resize(len, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    self.record(row)?;
                    self.out_len = 0;
                    self.ends_len = 0;
                }
                csv_core::ReadRecordResult::End => return Ok(()),
            }
        }
    }

    fn record<F>(&mut self, row: &mut F) -> Result<(), Invalid>
    where
        F: FnMut(u64, &[String], &[&str]) -> Result<(), Invalid>,
    {
        let data = &self.out[..self.out_len];
        let mut cells = Vec::with_capacity(self.ends_len);
        let mut start = 0;
        let number = self.rows + 1;
        for &end in &self.ends[..self.ends_len] {
            let cell = std::str::from_utf8(&data[start..end]).map_err(|_| match self.header {
                None => Invalid::whole("the header row is not UTF-8"),
                Some(_) => Invalid::at(number, "is not UTF-8"),
            })?;
            cells.push(cell);
            start = end;
        }
        let Some(header) = &self.header else {
            let mut names: Vec<String> = Vec::with_capacity(cells.len());
            for c in &cells {
                let name = c.trim().to_string();
                if name.is_empty() {
                    return Err(Invalid::whole("the header row has an empty column name"));
                }
                if names.contains(&name) {
                    return Err(Invalid::whole(format!(
                        "the header row names the column {name:?} twice"
                    )));
                }
                names.push(name);
            }
            self.header = Some(names);
            return Ok(());
        };
        // A blank line is no row.
        if cells.len() == 1 && cells[0].is_empty() && header.len() > 1 {
            return Ok(());
        }
        self.rows = number;
        if cells.len() != header.len() {
            return Err(Invalid::at(
                number,
                format!(
                    "has {} fields; the header has {}",
                    cells.len(),
                    header.len()
                ),
            ));
        }
        row(number, header, &cells)
    }
}

/// A CSV row as a JSON object keyed by the header, cells typed as the
/// schema's columns ask (an empty cell is an absent field).
pub fn csv_object(header: &[String], cells: &[&str], schema: Option<&Schema>) -> Value {
    let mut object = Map::with_capacity(header.len());
    for (name, text) in header.iter().zip(cells) {
        if text.is_empty() {
            continue;
        }
        let value = match schema {
            Some(s) => s.cell(name, text),
            None => Value::String((*text).to_string()),
        };
        object.insert(name.clone(), value);
    }
    Value::Object(object)
}

/// The lines of a JSON-lines file, fed in chunks.
#[derive(Debug)]
pub struct JsonLines {
    partial: Vec<u8>,
    max_row: usize,
    rows: u64,
}

impl JsonLines {
    /// A reader allowing lines up to `max_row` bytes.
    pub fn new(max_row: usize) -> Self {
        Self {
            partial: Vec::new(),
            max_row,
            rows: 0,
        }
    }

    /// Data rows so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Feeds `input` (empty: the end of the file) and calls `row` with
    /// each non-blank line's number and value.
    pub fn feed<F>(&mut self, mut input: &[u8], row: &mut F) -> Result<(), Invalid>
    where
        F: FnMut(u64, Value) -> Result<(), Invalid>,
    {
        if input.is_empty() {
            let line = std::mem::take(&mut self.partial);
            return self.line(&line, row);
        }
        while let Some(pos) = input.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&input[..pos], row)?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&input[..pos]);
                self.line(&line, row)?;
            }
            input = &input[pos + 1..];
        }
        if self.partial.len() + input.len() > self.max_row {
            return Err(Invalid::at(
                self.rows + 1,
                format!("is longer than {} bytes", self.max_row),
            ));
        }
        self.partial.extend_from_slice(input);
        Ok(())
    }

    fn line<F>(&mut self, line: &[u8], row: &mut F) -> Result<(), Invalid>
    where
        F: FnMut(u64, Value) -> Result<(), Invalid>,
    {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.rows += 1;
        if line.len() > self.max_row {
            return Err(Invalid::at(
                self.rows,
                format!("is longer than {} bytes", self.max_row),
            ));
        }
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| Invalid::at(self.rows, format!("is not JSON: {e}")))?;
        row(self.rows, value)
    }
}

enum Rows {
    Undecided,
    Csv(Box<CsvRows>),
    Lines(JsonLines),
    None,
}

/// The inspection of one object, fed chunk by chunk.
pub struct Inspector {
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    content_type: &'static str,
    declared: String,
    schema: Option<Schema>,
    max_row: usize,
    rows: Rows,
    invalid: Option<Invalid>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Inspector {
    /// An inspection of a file declared as `declared`, its rows checked
    /// against `schema`, rows up to `max_row` bytes.
    pub fn new(declared: &str, schema: Option<Schema>, max_row: usize) -> Self {
        Self {
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            content_type: OCTET_STREAM,
            declared: declared.to_string(),
            schema,
            max_row,
            rows: Rows::Undecided,
            invalid: None,
        }
    }

    /// Feeds the next bytes. `false`: the file is invalid already; the
    /// rest need not be read.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        if self.invalid.is_some() {
            return false;
        }
        if chunk.is_empty() {
            return true;
        }
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        if matches!(self.rows, Rows::Undecided) {
            self.head.extend_from_slice(chunk);
            if self.head.len() < SNIFF_LEN {
                return true;
            }
            let head = std::mem::take(&mut self.head);
            self.decide(&head, false);
            self.parse(&head);
        } else {
            self.parse(chunk);
        }
        self.invalid.is_none()
    }

    /// The end of the file: what was found.
    pub fn finish(mut self) -> Inspection {
        if matches!(self.rows, Rows::Undecided) {
            let head = std::mem::take(&mut self.head);
            self.decide(&head, true);
            if !head.is_empty() {
                self.parse(&head);
            }
        }
        if self.invalid.is_none() {
            self.parse(&[]);
        }
        let rows = match &self.rows {
            Rows::Csv(c) => Some(c.rows()),
            Rows::Lines(l) => Some(l.rows()),
            _ => None,
        };
        if self.invalid.is_none() {
            if let Rows::Csv(c) = &self.rows {
                if c.header().is_none() {
                    self.invalid = Some(Invalid::whole("the CSV file has no header row"));
                }
            }
        }
        Inspection {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
            content_type: self.content_type.to_string(),
            rows,
            invalid: self.invalid,
        }
    }

    fn decide(&mut self, head: &[u8], complete: bool) {
        let sniffed = sniff(head, complete);
        self.content_type = sniffed;
        let declared = format_of(&self.declared);
        let found = match sniffed {
            CSV => Some(Format::Csv),
            JSON_LINES => Some(Format::JsonLines),
            _ => None,
        };
        let fits = match declared {
            // A one-column CSV file has no comma to sniff.
            Some(Format::Csv) => found == Some(Format::Csv) || sniffed == TEXT,
            // A one-line file may read as a single JSON document.
            Some(Format::JsonLines) => {
                found == Some(Format::JsonLines) || sniffed == "application/json"
            }
            None => true,
        };
        if !fits {
            let want = if declared == Some(Format::Csv) {
                CSV
            } else {
                JSON_LINES
            };
            self.invalid = Some(Invalid::whole(if sniffed == EMPTY {
                format!("declared {want}, but the file is empty")
            } else {
                format!("declared {want}, but the bytes are {sniffed}")
            }));
            self.rows = Rows::None;
            return;
        }
        self.rows = match declared.or(found) {
            Some(Format::Csv) => {
                self.content_type = CSV;
                Rows::Csv(Box::new(CsvRows::new(self.max_row)))
            }
            Some(Format::JsonLines) => {
                self.content_type = JSON_LINES;
                Rows::Lines(JsonLines::new(self.max_row))
            }
            None => {
                if let Some(reason) = mismatch(&self.declared, sniffed) {
                    self.invalid = Some(Invalid::whole(reason));
                }
                Rows::None
            }
        };
    }

    fn parse(&mut self, input: &[u8]) {
        let schema = self.schema.as_ref();
        let result = match &mut self.rows {
            Rows::Csv(c) => c.feed(input, &mut |n, header, cells| match schema {
                None => Ok(()),
                Some(s) => s
                    .check(&csv_object(header, cells, Some(s)))
                    .map_err(|e| Invalid::at(n, e)),
            }),
            Rows::Lines(l) => l.feed(input, &mut |n, value| match schema {
                None => Ok(()),
                Some(s) => s.check(&value).map_err(|e| Invalid::at(n, e)),
            }),
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.invalid = Some(e);
        }
    }
}

/// Why a declared type that sluice does not parse contradicts the bytes:
/// only a recognisable binary format that differs from a specific
/// declaration counts (generic declarations accept anything).
fn mismatch(declared: &str, sniffed: &str) -> Option<String> {
    let declared = declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if declared.is_empty() || declared == OCTET_STREAM || declared == "binary/octet-stream" {
        return None;
    }
    if sniffed == OCTET_STREAM || sniffed == TEXT || sniffed == EMPTY {
        return None;
    }
    if declared == sniffed {
        return None;
    }
    // Text declared, text found (JSON, CSV): fine.
    if declared.starts_with("text/")
        && !sniffed.starts_with("image/")
        && !sniffed.starts_with("application/")
    {
        return None;
    }
    Some(format!("declared {declared}, but the bytes are {sniffed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect(declared: &str, schema: Option<Value>, data: &[u8], chunk: usize) -> Inspection {
        let schema = schema.map(|s| Schema::compile(&s).unwrap());
        let mut i = Inspector::new(declared, schema, 1 << 20);
        for c in data.chunks(chunk.max(1)) {
            if !i.feed(c) {
                break;
            }
        }
        i.finish()
    }

    fn people() -> Value {
        serde_json::json!({
            "type": "object",
            "required": ["id", "name"],
            "properties": {"id": {"type": "integer", "minimum": 1}, "name": {"type": "string"},
                           "active": {"type": "boolean"}}
        })
    }

    #[test]
    fn csv_rows_are_counted_and_checked_in_any_chunking() {
        let data = b"id,name,active\n1,ann,true\n2,\"bob, jr\",false\r\n3,cy,\n";
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let r = inspect("text/csv", Some(people()), data, chunk);
            assert_eq!(r.invalid, None, "chunk {chunk}");
            assert_eq!(r.rows, Some(3));
            assert_eq!(r.content_type, CSV);
            assert_eq!(r.size, data.len() as u64);
            assert_eq!(r.sha256, hex::encode(Sha256::digest(data)));
        }
    }

    #[test]
    fn a_bad_csv_row_is_named() {
        let data = b"id,name\n1,ann\n0,bob\n3,cy\n";
        let r = inspect("text/csv", Some(people()), data, 5);
        let bad = r.invalid.unwrap();
        assert_eq!(bad.row, Some(2));
        assert!(bad.reason.contains("/id"), "{}", bad.reason);
        let r = inspect("text/csv", None, b"a,b\n1,2\n3\n", 4);
        assert_eq!(
            r.invalid.unwrap(),
            Invalid::at(2, "has 1 fields; the header has 2")
        );
        let r = inspect("text/csv", Some(people()), b"id,name\n1,\n", 4);
        assert_eq!(
            r.invalid.unwrap().row,
            Some(1),
            "an empty required cell is missing"
        );
    }

    #[test]
    fn json_lines_are_counted_and_checked() {
        let data = b"{\"id\":1,\"name\":\"a\"}\n\n{\"id\":2,\"name\":\"b\"}";
        let r = inspect("application/x-ndjson", Some(people()), data, 3);
        assert_eq!((r.rows, r.invalid), (Some(2), None));
        let r = inspect("application/x-ndjson", None, b"{\"a\":1}\n{oops\n", 3);
        assert_eq!(r.invalid.unwrap().row, Some(2));
        let r = inspect("application/x-ndjson", Some(people()), b"{\"id\":1}\n", 64);
        assert_eq!(r.invalid.unwrap().row, Some(1));
    }

    #[test]
    fn the_content_type_comes_from_the_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
        let r = inspect("text/csv", None, png, 64);
        assert_eq!(r.content_type, "image/png");
        assert!(r.invalid.unwrap().reason.contains("image/png"));
        let r = inspect("application/pdf", None, png, 64);
        assert!(r.invalid.is_some(), "a PNG declared as a PDF");
        let r = inspect("application/octet-stream", None, png, 64);
        assert_eq!(r.invalid, None);
        let r = inspect("image/png", None, png, 64);
        assert_eq!(r.invalid, None);
        let r = inspect("text/csv", None, b"", 64);
        assert!(r.invalid.unwrap().reason.contains("empty"));
        let r = inspect("text/plain", None, b"a,b\n1,2\n", 64);
        assert_eq!((r.content_type.as_str(), r.rows), (CSV, Some(1)));
        let r = inspect("text/csv", None, b"id\n1\n2\n", 64);
        assert_eq!((r.content_type.as_str(), r.rows), (CSV, Some(2)));
    }

    #[test]
    fn a_row_longer_than_allowed_stops_the_reading() {
        let mut i = Inspector::new("text/csv", None, 1024);
        assert!(i.feed(b"a,b\n"));
        let long = vec![b'x'; 4 * SNIFF_LEN];
        let mut fed = true;
        for c in long.chunks(100) {
            fed = i.feed(c);
            if !fed {
                break;
            }
        }
        assert!(!fed);
        let r = i.finish();
        assert!(r.invalid.unwrap().reason.contains("longer than 1024"));
    }

    #[test]
    fn a_bad_schema_is_refused() {
        assert!(Schema::compile(&serde_json::json!({"type": 12})).is_err());
    }

    proptest::proptest! {
        #[test]
        fn chunking_never_changes_the_answer(rows in proptest::collection::vec((0u32..1000, "[a-z ,\"]{0,12}"), 0..40), chunk in 1usize..50) {
            let mut data = b"n,text\n".to_vec();
            for (n, t) in &rows {
                data.extend_from_slice(format!("{n},\"{}\"\n", t.replace('"', "\"\"")).as_bytes());
            }
            let whole = inspect("text/csv", None, &data, data.len());
            let pieces = inspect("text/csv", None, &data, chunk);
            proptest::prop_assert_eq!(&whole, &pieces);
            proptest::prop_assert_eq!(whole.rows, Some(rows.len() as u64));
        }
    }
}
