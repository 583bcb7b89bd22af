//! The chart's `helm test` pods, run here against a real stack: their
//! scripts are taken from the rendered chart (helm template) and run with a
//! POSIX shell and curl, with the gateway's address and an API key in the
//! environment the pods give them. A cluster runs the same scripts against
//! the gateway's Service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;
use sluice_e2e::{Stack, ADMIN_KEY};

/// Each test pod's name and script, from `helm template` of the chart.
fn test_pods() -> Vec<(String, String)> {
    let root = sluice_testkit::repo_root();
    let out = Command::new(root.join(".deps/bin/helm"))
        .args(["template", "sluice"])
        .arg(root.join("deploy/helm/sluice"))
        .output()
        .expect("helm (make deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut pods = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: Value = match serde::Deserialize::deserialize(doc) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if doc["kind"] != "Pod" || doc["metadata"]["annotations"]["helm.sh/hook"] != "test" {
            continue;
        }
        let command = doc["spec"]["containers"][0]["command"].as_array().unwrap();
        assert_eq!(command[0], "/bin/sh", "{doc}");
        pods.push((
            doc["metadata"]["name"].as_str().unwrap().to_string(),
            command[2].as_str().unwrap().to_string(),
        ));
    }
    pods
}

#[tokio::test(flavor = "multi_thread")]
async fn the_charts_helm_tests_pass_against_a_real_gateway() {
    let pods = test_pods();
    assert_eq!(pods.len(), 2, "{pods:?}");
    let stack = Stack::start("helmtests", &[]).await.unwrap();
    for (name, script) in pods {
        let out = tokio::process::Command::new("sh")
            .args(["-ec", &script])
            .env("GATEWAY", &stack.url)
            .env("API_KEY", ADMIN_KEY)
            .env("TIMEOUT", "90")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{name} failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            stack.logs()
        );
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            said.contains("processed:") || said.contains("delivered:"),
            "{name}: {said}"
        );
    }
}
