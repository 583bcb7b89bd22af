//! `make chaos`: the chaos run of `sluice_e2e::chaos` at full size
//! (`SLUICE_CHAOS_EVENTS`, default 100,000). Exits 1 unless nothing
//! accepted was lost or applied twice; the last line printed is
//! `chaos: accepted=N processed=N lost=N duplicated=N`.

#[tokio::main]
async fn main() {
    let opts = sluice_e2e::chaos::Options::from_env(100_000, 500);
    eprintln!(
        "chaos: {} events at {}/s, a fault every {:?} or so, seed {} (SLUICE_CHAOS_SEED repeats it)",
        opts.events, opts.rate, opts.fault_every, opts.seed
    );
    match sluice_e2e::chaos::run(&opts).await {
        Ok(report) => {
            println!("{}", report.text());
            std::process::exit(i32::from(!report.passed()));
        }
        Err(e) => {
            eprintln!("chaos: the run failed: {e:#}");
            std::process::exit(2);
        }
    }
}
