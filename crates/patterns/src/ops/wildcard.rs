//! `wildcard`: `*` globs with event-ruler's escaping rules.

/// A compiled wildcard: literal segments between `*`s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wildcard {
    segments: Vec<Box<str>>,
}

impl Wildcard {
    /// Parses `\*` (a literal star), `\\` (a literal backslash) and `*`.
    /// Any other escape, a trailing `\` and `**` are errors (event-ruler's
    /// WildcardParser; positions are 1-based).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut segments = vec![String::new()];
        let mut chars = text.chars().enumerate();
        let mut prev_star = false;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '\\'))) => {
                        // The escaped character is literal.
                        if let Some(last) = segments.last_mut() {
                            last.push(e);
                        }
                        prev_star = false;
                    }
                    _ => return Err(format!("Invalid escape character at pos {}", i + 1)),
                },
                '*' => {
                    if prev_star {
                        return Err(format!("Consecutive wildcard characters at pos {i}"));
                    }
                    segments.push(String::new());
                    prev_star = true;
                }
                other => {
                    if let Some(last) = segments.last_mut() {
                        last.push(other);
                    }
                    prev_star = false;
                }
            }
        }
        // A leading or trailing `*` leaves an empty first or last segment.
        Ok(Self {
            segments: segments.into_iter().map(String::into_boxed_str).collect(),
        })
    }

    /// The literal text between the stars (first and last may be empty).
    pub(crate) fn segments(&self) -> &[Box<str>] {
        &self.segments
    }

    /// How many `*` the value has.
    pub(crate) fn stars(&self) -> usize {
        self.segments.len() - 1
    }

    /// Glob match with `*` only: anchored first and last segments, the
    /// middle ones found greedily left to right (linear in the value for a
    /// fixed pattern).
    pub(crate) fn matches(&self, value: &str) -> bool {
        let n = self.segments.len();
        if n == 1 {
            return *self.segments[0] == *value;
        }
        let first = &self.segments[0];
        let last = &self.segments[n - 1];
        if !value.starts_with(&**first) || !value.ends_with(&**last) {
            return false;
        }
        if first.len() + last.len() > value.len() {
            return false;
        }
        let mut rest = &value[first.len()..value.len() - last.len()];
        for seg in &self.segments[1..n - 1] {
            match rest.find(&**seg) {
                Some(i) => rest = &rest[i + seg.len()..],
                None => return false,
            }
        }
        true
    }
}
