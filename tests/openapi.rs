//! The OpenAPI document is exact: schemathesis (installed by `make deps`)
//! generates requests from it, valid and invalid, against a whole running
//! stack, with every check: no server error, every status and content
//! type documented, responses matching their schemas, schema-valid
//! requests accepted and schema-invalid ones refused. The exceptions, where
//! the server checks more than JSON Schema can state, are listed with their
//! reasons in tests/schemathesis.toml.
//!
//! `SLUICE_SCHEMATHESIS_EXAMPLES` (default 50) and `SLUICE_SCHEMATHESIS_SEED`
//! (default 1: the same requests every run) tune it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_e2e::{Stack, ADMIN_KEY};

#[tokio::test]
async fn schemathesis_finds_the_api_exactly_as_documented() {
    let stack = Stack::start_with_workflows("openapi", &[], true)
        .await
        .unwrap();
    let root = sluice_testkit::repo_root();
    let st = root.join(".deps/venv/bin/st");
    assert!(st.exists(), "{} missing: run `make deps`", st.display());
    let examples = std::env::var("SLUICE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "50".into());
    let seed = std::env::var("SLUICE_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let out = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(root.join("tests/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/openapi.json", stack.url))
        .args([
            "--checks",
            "all",
            "--max-examples",
            &examples,
            "--seed",
            &seed,
        ])
        .args(["--no-color"])
        .env("SLUICE_API_KEY", ADMIN_KEY)
        .current_dir(stack.servers.dir.path())
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Generated bodies can be huge; keep the report readable.
    let short: String = stdout
        .lines()
        .map(|l| l.chars().take(400).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "schemathesis found the API and its document disagreeing (seed {seed}):\n{short}\n{stderr}\n{}",
        stack.logs()
    );
    assert!(stdout.contains("passed"), "{short}");
}
