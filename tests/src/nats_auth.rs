//! Least-privilege NATS users: the table of what each service (and the
//! object store) may publish and subscribe to, read from the Helm chart's
//! values (`nats.auth.users`), the same table the chart renders into the
//! server's `authorization` block.
//!
//! A stack runs with these users when the test asks for it
//! ([`users`] into `Servers::start_with_users`), or for every stack when
//! `SLUICE_TEST_NATS_AUTH=1` ([`enabled`]): each service then connects as
//! its own user, MinIO as `objectstore`, the test itself as [`ADMIN`];
//! streams have no prefix (the table names them without one).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use sluice_testkit::NatsUser;

/// The services, each its own user of the same name.
pub const SERVICES: [&str; 6] = [
    "gateway",
    "processor",
    "transformer",
    "notifier",
    "orchestrator",
    "file-ingest",
];

/// The object store's user (MinIO's notifications).
pub const OBJECT_STORE: &str = "objectstore";

/// The tests' own user, allowed everything (not in the chart).
pub const ADMIN: &str = "e2e-admin";

/// The chart's values, relative to the repository root.
pub const CHART_VALUES: &str = "deploy/helm/sluice/values.yaml";

/// Whether `SLUICE_TEST_NATS_AUTH=1` asks every stack to run with the users.
pub fn enabled() -> bool {
    std::env::var("SLUICE_TEST_NATS_AUTH").is_ok_and(|v| v == "1" || v == "true")
}

/// What one user may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// User (and service) name.
    pub name: String,
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may not publish to though `publish` allows them.
    pub publish_deny: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Subjects it may not subscribe to though `subscribe` allows them.
    pub subscribe_deny: Vec<String>,
}

/// Reads a list of `{name, publish, subscribe, publishDeny?, subscribeDeny?}`.
pub fn parse_users(list: &Value) -> Result<Vec<Permissions>> {
    let Some(items) = list.as_array() else {
        bail!("users: not a list");
    };
    let strings = |u: &Value, key: &str, name: &str| -> Result<Vec<String>> {
        match &u[key] {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .with_context(|| format!("user {name}: {key}: {s} is not a string"))
                })
                .collect(),
            other => bail!("user {name}: {key}: {other} is not a list"),
        }
    };
    let mut out: Vec<Permissions> = Vec::new();
    for u in items {
        let Some(name) = u["name"].as_str() else {
            bail!("a user without a name: {u}");
        };
        if let Some(unknown) = u.as_object().and_then(|o| {
            o.keys()
                .find(|k| {
                    ![
                        "name",
                        "publish",
                        "subscribe",
                        "publishDeny",
                        "subscribeDeny",
                    ]
                    .contains(&k.as_str())
                })
                .cloned()
        }) {
            bail!("user {name}: unknown key {unknown:?}");
        }
        if out.iter().any(|p| p.name == name) {
            bail!("user {name} twice");
        }
        out.push(Permissions {
            name: name.to_string(),
            publish: strings(u, "publish", name)?,
            publish_deny: strings(u, "publishDeny", name)?,
            subscribe: strings(u, "subscribe", name)?,
            subscribe_deny: strings(u, "subscribeDeny", name)?,
        });
    }
    Ok(out)
}

/// The users under `nats.auth.users` of a values document.
pub fn users_of(values: &str) -> Result<Vec<Permissions>> {
    let doc: Value = serde_yaml_ng::from_str(values).context("not YAML")?;
    parse_users(&doc["nats"]["auth"]["users"]).context("nats.auth.users")
}

/// The table of the chart's values, and where it came from; it must name
/// every service and the object store.
pub fn table() -> Result<(Vec<Permissions>, PathBuf)> {
    let path = sluice_testkit::repo_root().join(CHART_VALUES);
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let t = users_of(&text).with_context(|| path.display().to_string())?;
    for s in SERVICES.iter().chain([&OBJECT_STORE]) {
        if !t.iter().any(|p| p.name == *s) {
            bail!("{}: nats.auth.users has no user {s}", path.display());
        }
    }
    Ok((t, path))
}

/// The server's users: the table's, each with a fresh password, and
/// [`ADMIN`].
pub fn users() -> Result<Vec<NatsUser>> {
    let (table, _) = table()?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut users: Vec<NatsUser> = table
        .into_iter()
        .map(|p| NatsUser {
            password: format!("{}-{run}", p.name),
            name: p.name,
            publish: p.publish,
            publish_deny: p.publish_deny,
            subscribe: p.subscribe,
            subscribe_deny: p.subscribe_deny,
        })
        .collect();
    users.push(NatsUser::admin(ADMIN, &format!("admin-{run}")));
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_layout_of_the_table_is_read_with_its_deny_lists() {
        let values = r#"
global:
  nats:
    account: "$G"
nats:
  enabled: true
  auth:
    # -- Per-service users.
    enabled: true
    users:
      - name: gateway
        publish:
          # declared at start
          - "$JS.API.STREAM.UPDATE.INGEST"
          - "ingest.>"   # events in
        publishDeny:
          - "$JS.ACK.INGEST.>"
        subscribe: ["_INBOX.>"]

      - name: objectstore
        publish: ["files.uploads"]
        subscribe:
          - "_INBOX.>"
scylla:
  enabled: true
"#;
        let users = users_of(values).unwrap();
        assert_eq!(
            users[0],
            Permissions {
                name: "gateway".into(),
                publish: vec!["$JS.API.STREAM.UPDATE.INGEST".into(), "ingest.>".into()],
                publish_deny: vec!["$JS.ACK.INGEST.>".into()],
                subscribe: vec!["_INBOX.>".into()],
                subscribe_deny: vec![],
            }
        );
        assert_eq!(users[1].name, "objectstore");
        assert_eq!(users[1].publish, vec!["files.uploads".to_string()]);
        let typo = serde_json::json!([{"name": "x", "publish": [], "subcribe": []}]);
        assert!(parse_users(&typo).is_err(), "an unknown key is an error");
    }
}
