#!/usr/bin/env bash
# The patterns benchmark: sluice's matcher and a naive evaluate-every-rule
# loop (criterion), then event-ruler on the same corpus, in ROUNDS rounds
# (default 5) so each figure is a median with its spread; each round runs
# both, one after the other, so a ratio compares runs made under the same
# conditions. Summary in bench/results/patterns.md.
#   ROUNDS=3 bash scripts/bench-patterns.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="target/patterns-bench"
mkdir -p "$out"
rounds="${ROUNDS:-5}"
: >"$out/rounds.jsonl"
for round in $(seq 1 "$rounds"); do
  echo "patterns benchmark: round $round of $rounds" >&2
  cargo bench -p sluice-patterns --bench matching -- --noplot 2>&1 |
    grep -E "^matches with" >"$out/sluice-matches.txt"
  bash scripts/bench-event-ruler.sh 3 >"$out/event-ruler.jsonl"
  python3 - "$root" "$round" >>"$out/rounds.jsonl" <<'PY'
import json, pathlib, re, sys
root, rnd = pathlib.Path(sys.argv[1]), int(sys.argv[2])
events = 500
def eps(kind, n):
    f = root / f"target/criterion/matching/{kind}/{n}/new/estimates.json"
    if not f.exists():
        return None
    return events / (json.loads(f.read_text())["median"]["point_estimate"] / 1e9)
ruler = {}
for line in (root / "target/patterns-bench/event-ruler.jsonl").read_text().splitlines():
    if line.startswith("{"):
        r = json.loads(line)
        ruler[r["rules"]] = r
ours = {}
for line in (root / "target/patterns-bench/sluice-matches.txt").read_text().splitlines():
    m = re.match(r"matches with (\d+) rules: (\d+)", line)
    if m:
        ours[int(m.group(1))] = int(m.group(2))
for n in [1, 100, 1000, 10000]:
    r = ruler.get(n, {})
    print(json.dumps({"round": rnd, "rules": n, "matcher": eps("matcher", n), "naive": eps("naive", n),
                      "event_ruler": r.get("events_per_sec"),
                      "same_matches": ours.get(n) == r.get("matches")}))
PY
done
python3 - "$root" "$rounds" <<'PY'
import json, pathlib, statistics, sys
root, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
rows = [json.loads(l) for l in (root / "target/patterns-bench/rounds.jsonl").read_text().splitlines()]
def stat(values, fmt):
    v = [x for x in values if x]
    if not v:
        return "not run"
    return f"{fmt(statistics.median(v))} ({fmt(min(v))}–{fmt(max(v))})"
count = lambda x: f"{x:,.0f}"
ratio = lambda x: f"{x:.2f}×"
lines = []
for n in [1, 100, 1000, 10000]:
    r = [x for x in rows if x["rules"] == n]
    m = [x["matcher"] for x in r]
    nv = [x["naive"] for x in r]
    er = [x["event_ruler"] for x in r]
    per_round_er = [x["matcher"] / x["event_ruler"] for x in r if x["matcher"] and x["event_ruler"]]
    per_round_nv = [x["matcher"] / x["naive"] for x in r if x["matcher"] and x["naive"]]
    agree = "yes" if all(x["same_matches"] for x in r) else "no"
    lines.append(f"| {n:,} | {stat(m, count)} | {stat(nv, count)} | {stat(er, count)} | "
                 f"{stat(per_round_nv, ratio)} | {stat(per_round_er, ratio)} | {agree} |")
text = f"""# Event pattern matching benchmark

Command: `make bench` (runs `scripts/bench-patterns.sh`; `ROUNDS={rounds}`).
Corpus: 10,000 rules and 500 events of 1–4 KiB generated deterministically by
`crates/patterns/benches/matching.rs` (source + detail-type rules, half with a
condition on the detail: exact lists, numeric ranges, anything-but, prefix on
array elements, cidr, exists + suffix, $or, equals-ignore-case). Every
measurement starts from the event's JSON text, as event-ruler's
`rulesForJSONEvent` does (sluice's matcher reads only the values its rules
name; the naive loop parses the whole event).

Each of {rounds} rounds runs sluice (criterion, median of 10 samples) and then
event-ruler 2.1.0 (Maven Central, Java 17, 3 s after a warm-up) on the same
machine; a ratio is computed within a round. Every cell is the median over
the rounds with the lowest and highest round in brackets.

| rules | sluice matcher (events/s) | naive loop (events/s) | event-ruler (events/s) | matcher / naive | matcher / event-ruler | same matches as event-ruler |
|---|---|---|---|---|---|---|
""" + "\n".join(lines) + "\n"
out = root / "bench/results/patterns.md"
out.write_text(text)
print(text)
PY
