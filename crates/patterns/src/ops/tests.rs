//! Unit tests of the leaf matchers.

use super::*;
use super::{cidr::Cidr, wildcard::Wildcard};

#[test]
fn wildcards_follow_event_ruler_escaping() {
    let w = Wildcard::parse("Simple*Service").unwrap();
    assert!(w.matches("SimpleQueueService"));
    assert!(w.matches("SimpleService"));
    assert!(!w.matches("simpleService"));
    let w = Wildcard::parse(r"a\*b").unwrap();
    assert!(w.matches("a*b"));
    assert!(!w.matches("axb"));
    let w = Wildcard::parse(r"a\\b*").unwrap();
    assert!(w.matches(r"a\bc"));
    assert_eq!(
        Wildcard::parse("a**b").unwrap_err(),
        "Consecutive wildcard characters at pos 2"
    );
    assert_eq!(
        Wildcard::parse(r"a\b").unwrap_err(),
        "Invalid escape character at pos 2"
    );
    assert!(Wildcard::parse("a\\").is_err());
    assert!(Wildcard::parse("*").unwrap().matches(""));
    assert!(Wildcard::parse("").unwrap().matches(""));
    assert!(!Wildcard::parse("").unwrap().matches("x"));
    // Overlapping first/last segments must not double-count characters.
    assert!(!Wildcard::parse("ab*ba").unwrap().matches("aba"));
    assert!(Wildcard::parse("ab*ba").unwrap().matches("abba"));
    assert!(Wildcard::parse("*/bin/*.jar")
        .unwrap()
        .matches("/usr/bin/x.jar"));
    assert!(!Wildcard::parse("*/bin/*.jar")
        .unwrap()
        .matches("/usr/lib/x.jar"));
}

#[test]
fn case_folding_is_per_character_like_event_ruler() {
    assert_eq!(ic_prefix_len("alice", "ALICE"), Some(5));
    assert_eq!(ic_prefix_len("straße", "STRASSE"), Some(7));
    assert_eq!(ic_prefix_len("ß", "ss"), None);
    assert!(ic_suffix(".PNG", "cat.png"));
    assert!(!ic_suffix(".PNG", "cat.jpg"));
    // Outside the BMP only the character itself matches.
    assert_eq!(ic_prefix_len("𐐀", "𐐨"), None);
}

#[test]
fn cidr_ranges_and_their_errors() {
    let c = Cidr::parse("10.0.0.0/24").unwrap();
    assert!(c.contains("10.0.0.255"));
    assert!(!c.contains("10.0.1.0"));
    assert!(!c.contains("10.0.0.1:80"));
    assert!(!c.contains("not-an-ip"));
    assert!(Cidr::parse("10.0.0.77/24").unwrap().contains("10.0.0.1"));
    let c6 = Cidr::parse("2001:db8::/32").unwrap();
    assert!(c6.contains("2001:0DB8::1"));
    assert!(!c6.contains("2001:db9::1"));
    assert!(!c6.contains("10.0.0.1"));
    assert_eq!(
        Cidr::parse("10.0.0.0").unwrap_err(),
        "Malformed CIDR, one '/' required"
    );
    assert_eq!(
        Cidr::parse("10.0.0.0/x").unwrap_err(),
        "Malformed CIDR, mask bits must be an integer"
    );
    assert_eq!(
        Cidr::parse("xx.11.xx/8").unwrap_err(),
        "Nonstandard IP address: xx.11.xx"
    );
    assert_eq!(
        Cidr::parse("300.0.0.0/8").unwrap_err(),
        "Invalid IP address: 300.0.0.0"
    );
    assert!(Cidr::parse("10.0.0.0/32").is_err());
    assert!(Cidr::parse("::/128").is_err());
}
