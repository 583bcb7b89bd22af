//! Fuzzes pattern, filter-policy and transformer compilation and matching:
//! the input is split at the first NUL into a definition and an event.
//! Whatever the bytes, nothing may panic, overflow the stack or hang.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sluice_patterns::sns::{FilterPolicy, Scope};
use sluice_patterns::transform::{Context, Input};
use sluice_patterns::{Matcher, Pattern};

fuzz_target!(|data: &[u8]| {
    let (def, event) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(def) = serde_json::from_slice::<Value>(def) else { return };
    let event = serde_json::from_slice::<Value>(event).unwrap_or(Value::Null);
    if let Ok(p) = Pattern::parse(&def) {
        let single = p.matches(&event);
        let mut m = Matcher::new();
        m.add("r", &p);
        let multi = m.matches(&event);
        if let (Ok(a), Ok(b)) = (&single, &multi) {
            assert_eq!(*a, !b.is_empty(), "matcher and pattern disagree");
        }
    }
    for scope in [Scope::MessageAttributes, Scope::MessageBody] {
        if let Ok(policy) = FilterPolicy::parse(&def, scope) {
            let _ = policy.matches(&event);
        }
    }
    if let Ok(input) = Input::parse(&def) {
        let _ = input.render(&event, &Context::default());
    }
});
