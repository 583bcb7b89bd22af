//! Names users give to buses, rules, targets, queues, topics and workflow
//! types: the alphabets and lengths EventBridge, SQS and SNS allow. These
//! names become subject tokens, stream names and store keys, so none may
//! contain `/`, `*`, `>` or white space.

/// The bus every deployment has.
pub const DEFAULT_BUS: &str = "default";

fn check(what: &str, name: &str, max: usize, extra: &[char]) -> Result<(), String> {
    if name.is_empty() || name.len() > max {
        return Err(format!("{what} must be 1 to {max} characters long"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(c)))
    {
        let allowed: String = extra.iter().map(|c| format!(" {c}")).collect();
        return Err(format!(
            "{what} contains {c:?}; allowed are letters, digits and{allowed}"
        ));
    }
    Ok(())
}

/// A bus name: 1–256 of `A-Z a-z 0-9 . - _`.
pub fn check_bus(name: &str) -> Result<(), String> {
    check("a bus name", name, 256, &['.', '-', '_'])
}

/// A rule name: 1–64 of `A-Z a-z 0-9 . - _` (EventBridge's).
pub fn check_rule(name: &str) -> Result<(), String> {
    check("a rule name", name, 64, &['.', '-', '_'])
}

/// A target id: 1–64 of `A-Z a-z 0-9 . - _` (EventBridge's).
pub fn check_target_id(id: &str) -> Result<(), String> {
    check("a target id", id, 64, &['.', '-', '_'])
}

/// A queue name: 1–80 of `A-Z a-z 0-9 - _` (SQS's).
pub fn check_queue(name: &str) -> Result<(), String> {
    check("a queue name", name, 80, &['-', '_'])
}

/// The suffix of a FIFO topic's name, as SNS requires it.
pub const FIFO_SUFFIX: &str = ".fifo";

/// A topic name: 1–256 of `A-Z a-z 0-9 - _`, a FIFO topic's ending in
/// `.fifo` (SNS's).
pub fn check_topic(name: &str) -> Result<(), String> {
    if name.len() > 256 {
        return Err("a topic name must be 1 to 256 characters long".into());
    }
    let base = name.strip_suffix(FIFO_SUFFIX).unwrap_or(name);
    check("a topic name", base, 256, &['-', '_'])
}

/// Whether `topic` names a FIFO topic (its name ends in `.fifo`).
pub fn is_fifo_topic(topic: &str) -> bool {
    topic.ends_with(FIFO_SUFFIX)
}

/// A batch entry's id: 1–80 of `A-Z a-z 0-9 - _` (SNS's).
pub fn check_batch_entry_id(id: &str) -> Result<(), String> {
    check("a batch entry id", id, 80, &['-', '_'])
}

/// A workflow type: 1–128 of `A-Z a-z 0-9 . - _`.
pub fn check_workflow_type(name: &str) -> Result<(), String> {
    check("a workflow type", name, 128, &['.', '-', '_'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_closed_alphabets() {
        assert!(check_bus("orders.prod-1_a").is_ok());
        assert!(check_bus("a/b").is_err());
        assert!(check_rule(&"r".repeat(64)).is_ok());
        assert!(check_rule(&"r".repeat(65)).is_err());
        assert!(check_queue("jobs.x").is_err(), "no dots in queue names");
        assert!(check_topic("").is_err());
        assert!(check_topic("orders.fifo").is_ok() && is_fifo_topic("orders.fifo"));
        assert!(
            check_topic(".fifo").is_err(),
            "a FIFO topic needs a name too"
        );
        assert!(check_topic("a.b").is_err() && check_topic("a.fifo.fifo").is_err());
        assert!(check_topic(&format!("{}.fifo", "t".repeat(251))).is_ok());
        assert!(check_topic(&format!("{}.fifo", "t".repeat(252))).is_err());
        assert!(check_target_id("t 1").unwrap_err().contains("' '"));
    }
}
