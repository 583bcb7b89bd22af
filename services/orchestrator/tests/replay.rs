//! Determinism: histories recorded from real runs of each workflow
//! (`tests/histories/*.json`, recorded by the end-to-end workflow tests
//! with `SLUICE_RECORD_HISTORIES`) replay against the workflow code as it
//! is now. A change that would make a running workflow take another path
//! on replay fails here, in `make test`, not in production.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use temporalio_client::WorkflowHistory;

#[tokio::test]
async fn recorded_histories_replay_against_the_current_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut replayed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let history = WorkflowHistory::from_json(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        sluice_orchestrator::replayer()
            .unwrap()
            .replay_workflow(history)
            .await
            .unwrap_or_else(|e| panic!("{} no longer replays: {e}", path.display()));
        replayed.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    replayed.sort();
    assert_eq!(
        replayed,
        [
            "approval-cancel.json",
            "approval-link.json",
            "approval-signal.json",
            "approval-timeout.json",
            "file-pipeline-invalid.json",
            "file-pipeline-processed.json",
            "file-pipeline-redriven.json",
            "file-pipeline-retries-exhausted.json",
            "order-saga-confirmed.json",
            "order-saga-rejected.json",
        ],
        "every recorded history"
    );
}
