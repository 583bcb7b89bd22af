//! `sluice-bench`: the benchmarks behind `make bench`.
//!
//! `--suite ingest` (see [`ingest`]), on this machine, in one run, against
//! the same servers:
//! 1. raw JetStream durable publish rate (1 KiB messages, acks awaited, 256 in flight);
//! 2. raw store write rate (1 KiB PutItem, 64 in flight);
//! 3. gateway ingest at saturation (closed loop, processor stopped);
//! 4. gateway at fixed rates (open loop; 202 latency measured from the
//!    scheduled send time, so a stall is not hidden) and end-to-end latency
//!    from the 202 to the event's arrival on the bus (processed);
//! 5. processor throughput draining a backlog;
//! 6. each service's RSS idle and under load.
//!
//! `--suite bus` (see [`bus`]): routing through 1,000 rules to HTTP targets
//! against the raw JetStream consume rate, and bus → target latency against
//! a direct JetStream publish → consume, measured in the same run.
//!
//! `--suite fanout` (see [`fanout`]): one topic message to
//! `--subscriptions` signed webhook subscriptions against raw JetStream
//! fan-out to as many consumers, measured in the same run.
//!
//! `--suite tasks` (see [`tasks`]): the tasks API's create and list against
//! the store's raw write and query rates, measured in the same run.
//!
//! `--suite files` (see [`files`]): a 1 GiB CSV through the file pipeline
//! against the object store's raw GET, file-ingest's RSS, and pipelines of
//! tiny files per second with their latency.
//!
//! `--suite schedules` (see [`schedules`]): how late the ticks of
//! `--rules` scheduled rules, all due at the same instant, are fired and
//! delivered, over `--ticks` minutes.
//!
//! `--suite replay` (see [`replay`]): a replay of `--events` archived
//! events against the raw JetStream consume rate and a raw read and
//! republish, measured in the same run.
//!
//! Results go to `<out>/<suite>.md` (with the command and settings).
//! `--suite all` (the default) runs ingest and bus; `make bench` runs every
//! suite.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bus;
mod fanout;
mod files;
mod ingest;
mod replay;
mod schedules;
mod tasks;

use anyhow::Result;
use hdrhistogram::Histogram;

/// One run of a suite: its full report and its key figures.
pub struct Round {
    /// The run's report (markdown).
    pub report: String,
    /// Named figures, summarised over rounds.
    pub figures: Vec<(String, f64)>,
}

/// Command-line settings.
pub struct Args {
    out: std::path::PathBuf,
    seconds: u64,
    fsync_always: bool,
    rates: Vec<u64>,
    suite: String,
    rules: usize,
    rounds: usize,
    subscriptions: usize,
    events: usize,
    ticks: usize,
}

fn args() -> Args {
    let mut a = Args {
        out: "bench/results".into(),
        seconds: 10,
        fsync_always: true,
        rates: vec![500, 1000, 2000],
        suite: "all".into(),
        rules: 1000,
        rounds: 3,
        subscriptions: 100,
        events: 50_000,
        ticks: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => a.out = it.next().unwrap_or_default().into(),
            "--seconds" => a.seconds = it.next().and_then(|s| s.parse().ok()).unwrap_or(10),
            "--no-fsync" => a.fsync_always = false,
            "--suite" => a.suite = it.next().unwrap_or_default(),
            "--rules" => a.rules = it.next().and_then(|s| s.parse().ok()).unwrap_or(1000),
            "--rounds" => a.rounds = it.next().and_then(|s| s.parse().ok()).unwrap_or(3).max(1),
            "--subscriptions" => {
                a.subscriptions = it.next().and_then(|s| s.parse().ok()).unwrap_or(100).max(1)
            }
            "--events" => {
                a.events = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(50_000)
                    .max(1)
            }
            "--ticks" => a.ticks = it.next().and_then(|s| s.parse().ok()).unwrap_or(3).max(1),
            "--rates" => {
                a.rates = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|r| r.parse().ok())
                    .collect()
            }
            other => {
                eprintln!("usage: sluice-bench [--suite all|ingest|bus|fanout|tasks|files|schedules|replay] [--out DIR] [--seconds N] [--rates 500,1000] [--rules N] [--subscriptions N] [--events N] [--ticks N] [--rounds N] [--no-fsync]; got {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

pub(crate) fn rss_mib(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub(crate) fn payload(n: usize) -> serde_json::Value {
    serde_json::json!({
        "source": "bench", "detail-type": "Reading",
        "detail": {"n": n, "pad": "x".repeat(900)}
    })
}

pub(crate) fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Runs a suite `args.rounds` times and writes `<out>/<name>.md`: each key
/// figure as the median of the rounds with the lowest and highest, then
/// the last round's full report.
async fn rounds<F, Fut>(args: &Args, name: &str, title: &str, mut once: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Round>>,
{
    let mut done: Vec<Round> = Vec::new();
    for k in 1..=args.rounds {
        println!("== {name}: round {k} of {}", args.rounds);
        done.push(once().await?);
    }
    let mut table = String::from("| figure | median | lowest | highest |\n|---|---|---|---|\n");
    for (i, (label, _)) in done[0].figures.iter().enumerate() {
        let mut v: Vec<f64> = done
            .iter()
            .filter_map(|r| r.figures.get(i).map(|f| f.1))
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        let fmt = |x: f64| {
            if x.abs() >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        };
        table.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            fmt(median),
            fmt(v[0]),
            fmt(v[v.len() - 1])
        ));
    }
    let text = format!(
        "# {title}\n\nCommand: `{}` ({} rounds, each against fresh servers; `make bench` runs it)\n\n\
## Summary: median of {} rounds, with the lowest and highest\n\n{table}\n## The last round in detail\n\n{}",
        std::env::args().collect::<Vec<_>>().join(" "),
        args.rounds,
        args.rounds,
        done.last().map(|r| r.report.trim_start_matches(|c| c != '\n').to_string()).unwrap_or_default(),
    );
    let path = args.out.join(format!("{name}.md"));
    std::fs::write(&path, &text)?;
    println!("\n{table}\nwritten to {}", path.display());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args();
    std::fs::create_dir_all(&args.out)?;
    let bin = std::env::current_exe()?
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let bus_name = if args.fsync_always {
        "bus"
    } else {
        "bus-no-fsync"
    };
    let (ingest, bus) = match args.suite.as_str() {
        "ingest" => (true, false),
        "bus" => (false, true),
        "all" => (true, true),
        "fanout" => {
            return rounds(&args, "fanout", "sluice fan-out benchmark", || {
                fanout::run(&args, &bin)
            })
            .await;
        }
        "tasks" => {
            return rounds(&args, "tasks", "sluice tasks API benchmark", || {
                tasks::run(&args, &bin)
            })
            .await;
        }
        "files" => {
            return rounds(&args, "files", "sluice files benchmark", || {
                files::run(&args, &bin)
            })
            .await;
        }
        "schedules" => {
            return rounds(&args, "schedules", "sluice schedules benchmark", || {
                schedules::run(&args, &bin)
            })
            .await;
        }
        "replay" => {
            return rounds(&args, "replay", "sluice replay benchmark", || {
                replay::run(&args, &bin)
            })
            .await;
        }
        other => {
            eprintln!("unknown suite {other:?}: use all, ingest, bus, fanout, tasks, files, schedules or replay");
            std::process::exit(2);
        }
    };
    if ingest {
        rounds(&args, "ingest", "sluice ingest benchmark", || {
            ingest::run(&args, &bin)
        })
        .await?;
    }
    if bus {
        rounds(&args, bus_name, "sluice event bus benchmark", || {
            bus::run(&args, &bin)
        })
        .await?;
    }
    Ok(())
}
