//! Money as whole minor units of an ISO 4217 currency, never as floats.

/// ISO 4217 codes sluice accepts, with their number of minor-unit digits.
const CURRENCIES: &[(&str, u32)] = &[
    ("AUD", 2),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("INR", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PLN", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("USD", 2),
    ("ZAR", 2),
];

/// The OpenAPI schema of a currency: one of the codes sluice knows.
pub fn currency_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("ISO 4217 code"))
        .enum_values(Some(CURRENCIES.iter().map(|(c, _)| *c)))
        .build()
}

/// The OpenAPI schema of an amount: a positive decimal, as a string or a number.
pub fn amount_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^\\s*[0-9]{1,15}(\\.[0-9]+)?\\s*$")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(0.0))
                .maximum(Some(1.0e15)),
        )
        .description(Some(
            "A positive decimal amount with no more fraction digits than the currency has",
        ))
        .build();
    Schema::OneOf(one_of)
}

/// Largest amount in minor units one order line or total may reach.
pub const MAX_MINOR: i64 = 1_000_000_000_000_000;

/// The number of minor-unit digits of `code`, if sluice knows the currency.
pub fn minor_digits(code: &str) -> Option<u32> {
    CURRENCIES.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
}

/// Parses a decimal amount (`"12.50"`, `12.5`, `3`) into minor units of a
/// currency with `digits` minor digits. Refuses negatives, zero, more
/// fraction digits than the currency has, exponents and overflow.
pub fn parse_amount(text: &str, digits: u32) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("must be a decimal amount".into());
    }
    if t.starts_with('-') {
        return Err("must be greater than zero".into());
    }
    if t.contains(['e', 'E']) {
        return Err("must be written as a plain decimal, without an exponent".into());
    }
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("{t:?} is not a decimal amount"));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() as u32 > digits {
        return Err(format!(
            "has more than {digits} decimal places for this currency"
        ));
    }
    let scale = 10i64.pow(digits);
    let whole: i64 = int.parse().map_err(|_| "is too large".to_string())?;
    let mut frac_minor: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| "is too large".to_string())?
    };
    frac_minor *= 10i64.pow(digits - frac.len() as u32);
    let minor = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac_minor))
        .filter(|m| *m <= MAX_MINOR)
        .ok_or_else(|| "is too large".to_string())?;
    if minor == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(minor)
}

/// Formats minor units as a decimal string of the currency.
pub fn format_amount(minor: i64, digits: u32) -> String {
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(digits);
    format!(
        "{}.{:0width$}",
        minor / scale,
        (minor % scale).abs(),
        width = digits as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_become_exact_minor_units() {
        assert_eq!(parse_amount("12.50", 2), Ok(1250));
        assert_eq!(parse_amount("12.5", 2), Ok(1250));
        assert_eq!(parse_amount("3", 2), Ok(300));
        assert_eq!(parse_amount("0.10", 2), Ok(10));
        assert_eq!(parse_amount("1500", 0), Ok(1500));
        assert_eq!(parse_amount("1.234", 3), Ok(1234));
    }

    #[test]
    fn bad_amounts_are_refused() {
        assert!(parse_amount("0", 2).is_err());
        assert!(parse_amount("-1", 2).is_err());
        assert!(parse_amount("1.005", 2).is_err());
        assert!(parse_amount("1.5", 0).is_err());
        assert!(parse_amount("1e3", 2).is_err());
        assert!(parse_amount("abc", 2).is_err());
        assert!(parse_amount(".5", 2).is_err());
        assert!(parse_amount("99999999999999999999", 2).is_err());
    }

    #[test]
    fn formatting_round_trips() {
        assert_eq!(format_amount(1250, 2), "12.50");
        assert_eq!(format_amount(5, 2), "0.05");
        assert_eq!(format_amount(1500, 0), "1500");
        assert_eq!(parse_amount(&format_amount(98765, 3), 3), Ok(98765));
    }

    #[test]
    fn only_known_currencies_have_digits() {
        assert_eq!(minor_digits("EUR"), Some(2));
        assert_eq!(minor_digits("JPY"), Some(0));
        assert_eq!(minor_digits("eur"), None);
        assert_eq!(minor_digits("XXX"), None);
    }
}
