//! A bounded chaos run (`sluice_e2e::chaos`): steady load while every
//! service, NATS, the store, Temporal and the target fail at random;
//! nothing accepted is lost or applied twice. `make chaos` is the full run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[tokio::test]
async fn nothing_accepted_is_lost_or_applied_twice_while_everything_fails() {
    let mut opts = sluice_e2e::chaos::Options::from_env(3_000, 100);
    if std::env::var_os("SLUICE_CHAOS_FAULT_EVERY").is_none() {
        opts.fault_every = std::time::Duration::from_secs(3);
    }
    let report = sluice_e2e::chaos::run(&opts).await.unwrap();
    eprintln!("seed {}\n{}", opts.seed, report.text());
    assert!(report.accepted >= opts.events, "{}", report.text());
    assert!(report.faults.len() >= 5, "{}", report.text());
    assert!(report.passed(), "seed {}: {}", opts.seed, report.text());
}
