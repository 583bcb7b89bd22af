//! Parsing request bodies into typed inputs with errors that name the field.

use serde::de::DeserializeOwned;

/// One invalid field: where (an RFC 6901 JSON pointer into the body) and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// JSON pointer to the offending value, e.g. `/items/0/quantity`; `""` is the whole body.
    pub pointer: String,
    /// What is wrong, for a person.
    pub detail: String,
}

impl FieldError {
    /// An error at `pointer`.
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }

    /// The same error, nested below `prefix` (e.g. `/entries/3`).
    pub fn under(self, prefix: &str) -> Self {
        Self {
            pointer: format!("{prefix}{}", self.pointer),
            detail: self.detail,
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.detail)
        } else {
            write!(f, "{}: {}", self.pointer, self.detail)
        }
    }
}

/// Why a body could not be turned into an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Not JSON at all (HTTP 400).
    #[error("malformed JSON: {0}")]
    Syntax(String),
    /// JSON, but not of the expected shape or values (HTTP 422).
    #[error("{0}")]
    Invalid(FieldError),
}

/// Parses `body` as `T`, reporting the JSON pointer of the first problem.
/// Nesting deeper than serde_json's limit (128) is a syntax error, not a crash.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, InputError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let pointer = to_pointer(e.path());
            let inner = e.into_inner();
            return Err(classify(inner, pointer));
        }
    };
    de.end().map_err(|e| InputError::Syntax(e.to_string()))?;
    Ok(value)
}

/// Turns an already-parsed JSON value into `T`, reporting the pointer of the first problem.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer = to_pointer(e.path());
        FieldError::new(pointer, strip_position(e.inner()))
    })
}

fn classify(e: serde_json::Error, pointer: String) -> InputError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => InputError::Syntax(e.to_string()),
        Category::Data => InputError::Invalid(FieldError::new(pointer, strip_position(&e))),
    }
}

/// serde_json appends "at line 1 column 42"; the pointer says where already.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Enum { variant } => {
                out.push('/');
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        items: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn wrong_type_names_the_field_by_pointer() {
        let err = parse_json::<Outer>(br#"{"items":[{"n":1},{"n":"x"}]}"#).unwrap_err();
        match err {
            InputError::Invalid(f) => {
                assert_eq!(f.pointer, "/items/1/n");
                assert!(f.detail.contains("invalid type"), "{}", f.detail);
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_invalid_not_ignored() {
        let err = parse_json::<Outer>(br#"{"items":[],"extra":1}"#).unwrap_err();
        assert!(matches!(err, InputError::Invalid(ref f) if f.detail.contains("unknown field")));
    }

    #[test]
    fn malformed_json_is_a_syntax_error() {
        assert!(matches!(
            parse_json::<Outer>(br#"{"items":["#),
            Err(InputError::Syntax(_))
        ));
        assert!(matches!(
            parse_json::<Outer>(br#"{"items":[]} trailing"#),
            Err(InputError::Syntax(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse_json::<serde_json::Value>(body.as_bytes()),
            Err(InputError::Syntax(_))
        ));
    }
}

/// Integer fields that accept what JSON Schema calls an integer: `5` and
/// also `5.0` (a number with no fraction), as the OpenAPI document promises.
/// Use with `#[serde(deserialize_with = "...")]`.
pub mod int {
    use serde::{Deserialize, Deserializer};

    fn whole<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
        use serde::de::Error;
        let n = serde_json::Number::deserialize(d)?;
        let wide: Option<i128> = if let Some(u) = n.as_u64() {
            Some(i128::from(u))
        } else if let Some(i) = n.as_i64() {
            Some(i128::from(i))
        } else {
            n.as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18)
                .map(|f| f as i128)
        };
        let wide = wide.ok_or_else(|| D::Error::custom(format!("expected an integer, got {n}")))?;
        T::try_from(wide).map_err(|_| D::Error::custom(format!("{n} is out of range")))
    }

    /// A required integer.
    pub fn required<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
        whole(d)
    }

    /// An optional integer (absent or `null` is `None`).
    pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(deserialize_with = "whole")] i128);
        match Option::<Wrap>::deserialize(d)? {
            None => Ok(None),
            Some(Wrap(v)) => T::try_from(v)
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{v} is out of range"))),
        }
    }

    #[cfg(test)]
    mod tests {
        #[derive(Debug, serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "super::required")]
            a: u32,
            #[serde(default, deserialize_with = "super::optional")]
            b: Option<u8>,
        }

        #[test]
        fn whole_numbers_in_any_spelling_are_integers() {
            let t: T = serde_json::from_str(r#"{"a": 5.0, "b": 7}"#).unwrap();
            assert_eq!((t.a, t.b), (5, Some(7)));
            let t: T = serde_json::from_str(r#"{"a": 1e3, "b": null}"#).unwrap();
            assert_eq!((t.a, t.b), (1000, None));
            assert!(serde_json::from_str::<T>(r#"{"a": 5.5}"#).is_err());
            assert!(serde_json::from_str::<T>(r#"{"a": -1}"#).is_err());
            assert!(serde_json::from_str::<T>(r#"{"a": 1, "b": 300}"#).is_err());
            assert!(serde_json::from_str::<T>(r#"{"a": "1"}"#).is_err());
        }
    }
}

/// Object fields that take only a JSON object (or `null`), as the OpenAPI
/// document says: serde's derived structs also take an array of their
/// fields in order, which no client means. Errors inside keep their path.
/// Use with `#[serde(default, deserialize_with = "...")]`.
pub mod object {
    use std::marker::PhantomData;

    use serde::de::{MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    struct Only<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    /// An optional object (absent or `null` is `None`).
    pub fn optional<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        d.deserialize_option(Only(PhantomData))
    }

    #[cfg(test)]
    mod tests {
        #[derive(Debug, serde::Deserialize)]
        struct Inner {
            a: u32,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Outer {
            #[serde(default, deserialize_with = "super::optional")]
            inner: Option<Inner>,
        }

        #[test]
        fn only_objects_are_objects() {
            let o: Outer = serde_json::from_str(r#"{"inner": {"a": 1}}"#).unwrap();
            assert_eq!(o.inner.unwrap().a, 1);
            let o: Outer = serde_json::from_str(r#"{"inner": null}"#).unwrap();
            assert!(o.inner.is_none());
            let o: Outer = serde_json::from_str("{}").unwrap();
            assert!(o.inner.is_none());
            assert!(serde_json::from_str::<Outer>(r#"{"inner": [1]}"#).is_err());
            let e = serde_json::from_str::<Outer>(r#"{"inner": {"a": "x"}}"#).unwrap_err();
            assert!(e.to_string().contains("expected u32"), "{e}");
        }
    }
}
