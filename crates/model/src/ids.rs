//! Ids: what a client may send, and ids derived from other ids.
//!
//! An event derived from another (the domain event a processed order emits,
//! an event published for an idempotency key) gets an id computed from its
//! parent, so a redelivery or a retry produces the same id and JetStream's
//! `Nats-Msg-Id` de-duplication and the store's conditional writes absorb it.

use uuid::Uuid;

/// Namespace of every derived id (UUIDv5).
const NAMESPACE: Uuid = Uuid::from_u128(0x5a1c_e000_0000_4000_8000_5a1c_e5a1_ce00);

/// Longest id a client may choose.
pub const MAX_ID_LEN: usize = 128;

/// A fresh random id.
pub fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// The id of the thing `purpose` derived from `parent`; the same inputs give the same id.
pub fn derive_id(parent: &str, purpose: &str) -> String {
    let mut name = Vec::with_capacity(parent.len() + purpose.len() + 1);
    name.extend_from_slice(parent.as_bytes());
    name.push(0);
    name.extend_from_slice(purpose.as_bytes());
    Uuid::new_v5(&NAMESPACE, &name).to_string()
}

/// Checks an id chosen by a client: 1–128 characters of `A-Z a-z 0-9 - _ . :`.
/// Ids become NATS message ids and store keys, so the alphabet is closed.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("must be 1 to {MAX_ID_LEN} characters long"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(format!(
            "contains {c:?}; allowed are letters, digits and - _ . :"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct_per_purpose() {
        assert_eq!(derive_id("a", "x"), derive_id("a", "x"));
        assert_ne!(derive_id("a", "x"), derive_id("a", "y"));
        assert_ne!(derive_id("a", "x"), derive_id("b", "x"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(derive_id("ab", "c"), derive_id("a", "bc"));
    }

    #[test]
    fn client_ids_have_a_closed_alphabet() {
        assert!(check_client_id("order-42_v1.0:x").is_ok());
        assert!(check_client_id("").is_err());
        assert!(check_client_id("has space").is_err());
        assert!(check_client_id("a.b>c").is_err());
        assert!(check_client_id(&"x".repeat(129)).is_err());
    }
}
