#!/usr/bin/env bash
# Builds the patterns fuzz target with libFuzzer's coverage instrumentation
# (stable Rust, no cargo-fuzz needed) and runs it for N seconds (default 10).
#   scripts/fuzz.sh 600     # a longer run by hand
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-10}"
dir="$root/crates/patterns/fuzz"
target="$root/target/fuzz"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation off build scripts.
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --manifest-path "$dir/Cargo.toml" --target-dir "$target" --target "$triple" --bin patterns
work="$target/corpus"
mkdir -p "$work" "$target/artifacts"
cp -n "$dir"/corpus/patterns/* "$work"/ 2>/dev/null || true
"$target/$triple/release/patterns" -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=1024 \
  -artifact_prefix="$target/artifacts/" -print_final_stats=1 "$work"
