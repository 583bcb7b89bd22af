#!/usr/bin/env bash
# Runs AWS's event-ruler (Maven Central) on the patterns benchmark corpus that
# `cargo bench -p sluice-patterns` writes to target/patterns-bench/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/bench/event-ruler"
out="$root/target/patterns-bench"
mkdir -p "$out"
mvn -q -B -f "$dir/pom.xml" dependency:build-classpath -Dmdep.outputFile="$out/classpath.txt" >&2
cp="$(cat "$out/classpath.txt")"
mkdir -p "$out/classes"
javac -d "$out/classes" -cp "$cp" "$dir/src/Harness.java"
java -Xmx2g -cp "$out/classes:$cp" Harness "$out/rules.jsonl" "$out/events.jsonl" "${1:-3}"
