#!/usr/bin/env python3
"""Renders the chart's Grafana dashboards from a live Prometheus into PNGs.

Grafana cannot be installed from the package registries this project uses,
so this draws the same dashboards (deploy/helm/sluice/files/dashboards: each
panel's title, unit and PromQL queries, laid out by its gridPos) with the
data of a running Prometheus, one PNG per dashboard.

    .deps/plots-venv/bin/python scripts/render-dashboards.py \
        --prometheus http://127.0.0.1:9090 --minutes 15 --out bench/results/dashboards

`make dashboards` runs it against the Prometheus of `make up`. The last line
printed is `dashboards: rendered=N panels=N with_data=N`.
"""
import argparse
import json
import pathlib
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "deploy/helm/sluice/files/dashboards"

# Grafana's unit names, as an axis label and a scale.
UNITS = {
    "reqps": ("requests/s", 1),
    "ops": ("per second", 1),
    "percentunit": ("%", 100),
    "s": ("seconds", 1),
    "ms": ("milliseconds", 1),
    "bytes": ("bytes", 1),
    "short": ("", 1),
    "none": ("", 1),
}


def query_range(base, expr, start, end, step):
    """The series of `expr` over [start, end], or an error string."""
    params = urllib.parse.urlencode(
        {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}s"}
    )
    try:
        with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        return f"{e.code}: {e.read().decode(errors='replace')[:200]}"
    except (urllib.error.URLError, TimeoutError) as e:
        return f"Prometheus at {base} does not answer: {e}"
    if body.get("status") != "success":
        return body.get("error", "query failed")
    return body["data"]["result"]


def legend(fmt, labels):
    """Grafana's legendFormat: `{{name}}` replaced by the series' label."""
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def render(path, base, start, end, step, rate_interval, out):
    dash = json.loads(path.read_text())
    panels = dash["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(18, rows * 0.55 + 1.2), dpi=80)
    fig.suptitle(
        f"{dash['title']}   {datetime.fromtimestamp(start, timezone.utc):%Y-%m-%d %H:%M}"
        f" – {datetime.fromtimestamp(end, timezone.utc):%H:%M} UTC   ({base})",
        fontsize=13,
    )
    grid = fig.add_gridspec(rows, 24, hspace=2.2, wspace=0.8, top=1 - 1.0 / (rows * 0.55 + 1.2))
    with_data = 0
    errors = []
    for p in panels:
        g = p["gridPos"]
        ax = fig.add_subplot(grid[g["y"] : g["y"] + g["h"], g["x"] : g["x"] + g["w"]])
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        label, scale = UNITS.get(unit, (unit, 1))
        ax.set_title(p["title"], fontsize=10, loc="left")
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M" if end - start > 3600 else "%H:%M:%S"))
        ax.grid(alpha=0.3)
        drawn = 0
        for t in p["targets"]:
            expr = t["expr"].replace("$__rate_interval", rate_interval)
            result = query_range(base, expr, start, end, step)
            if isinstance(result, str):
                errors.append(f"{path.stem} / {p['title']}: {result}")
                continue
            for series in result[:12]:
                xs = [datetime.fromtimestamp(float(ts), timezone.utc) for ts, _ in series["values"]]
                ys = []
                for _, v in series["values"]:
                    try:
                        ys.append(float(v) * scale)
                    except ValueError:
                        ys.append(float("nan"))
                ax.plot(xs, ys, linewidth=1.2, label=legend(t.get("legendFormat"), series["metric"]))
                # A quantile of no observations is NaN: drawn, but no data.
                drawn += any(y == y for y in ys)
        if ax.lines:
            ax.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.6)
        if drawn:
            with_data += 1
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_xlim(datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(end, timezone.utc))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{path.stem}.png"
    fig.savefig(target)
    plt.close(fig)
    return target, len(panels), with_data, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--minutes", type=float, default=15, help="how far back (default 15)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/dashboards"))
    ap.add_argument("--rate-interval", default="1m", help="what $__rate_interval becomes (default 1m)")
    args = ap.parse_args()
    base = args.prometheus.rstrip("/")
    end = time.time()
    start = end - args.minutes * 60
    step = max(5, int(args.minutes * 60 / 300))
    total = data = rendered = 0
    problems = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        target, n, d, errors = render(path, base, start, end, step, args.rate_interval, pathlib.Path(args.out))
        print(f"{target}: {d} of {n} panels with data")
        total, data, rendered = total + n, data + d, rendered + 1
        problems += errors
    for p in problems:
        print(f"query failed: {p}", file=sys.stderr)
    print(f"dashboards: rendered={rendered} panels={total} with_data={data}")
    # A query Prometheus refuses is a broken dashboard, not an empty one.
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
