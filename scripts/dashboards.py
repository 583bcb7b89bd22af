#!/usr/bin/env python3
"""Writes the Grafana dashboards the chart ships (deploy/helm/sluice/files/dashboards).

Each dashboard is a list of panels, each panel a title, a unit and PromQL
queries. `python3 scripts/dashboards.py` rewrites the JSON; `--check` fails if
the committed JSON differs from what this file says (make test runs it).
"""
import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "deploy/helm/sluice/files/dashboards"

RATE = "[$__rate_interval]"


def p99(metric, by="le", extra=""):
    return f"histogram_quantile(0.99, sum by ({by}) (rate({metric}_bucket{extra}{RATE})))"


def p50(metric, by="le", extra=""):
    return f"histogram_quantile(0.5, sum by ({by}) (rate({metric}_bucket{extra}{RATE})))"


DASHBOARDS = {
    "sluice-api": ("sluice: API", [
        ("Requests by status", "reqps", [("sum by (status) (rate(sluice_gateway_requests" + RATE + "))", "{{status}}")]),
        ("Requests by route", "reqps", [("sum by (route) (rate(sluice_gateway_requests" + RATE + "))", "{{route}}")]),
        ("5xx share", "percentunit", [(
            "sum(rate(sluice_gateway_requests{status=~\"5..\"}" + RATE + ")) / sum(rate(sluice_gateway_requests" + RATE + "))", "5xx")]),
        ("Latency", "s", [(p50("sluice_gateway_request_duration_seconds"), "p50"),
                          (p99("sluice_gateway_request_duration_seconds"), "p99")]),
        ("Throttled and shed", "reqps", [("sum(rate(sluice_gateway_throttled" + RATE + "))", "throttled"),
                                         ("sum(rate(sluice_gateway_shed" + RATE + "))", "shed")]),
        ("Events accepted", "ops", [("sum by (kind) (rate(sluice_gateway_events_accepted" + RATE + "))", "{{kind}}")]),
    ]),
    "sluice-queues": ("sluice: queues and dead letters", [
        ("Ingest queue lag", "short", [("max(sluice_processor_queue_lag)", "waiting")]),
        ("Bus router lag", "short", [("max(sluice_transformer_router_lag)", "waiting")]),
        ("Deliveries waiting", "short", [("max(sluice_transformer_deliveries_waiting)", "waiting")]),
        ("Dead letters", "short", [("max(sluice_processor_dlq_depth)", "ingest DLQ"),
                                   ("max(sluice_transformer_dlq_depth)", "delivery DLQ")]),
        ("Accepted → processed", "s", [(p50("sluice_processor_end_to_end_seconds"), "p50"),
                                        (p99("sluice_processor_end_to_end_seconds"), "p99")]),
        ("Routed → delivered", "s", [(p99("sluice_transformer_delivery_latency_seconds", "le, kind"), "p99 {{kind}}")]),
        ("Dead-lettered", "ops", [("sum(rate(sluice_queues_dead_lettered" + RATE + "))", "queues"),
                                  ("sum by (step) (rate(sluice_files_dead_lettered" + RATE + "))", "files {{step}}")]),
    ]),
    "sluice-store": ("sluice: store", [
        ("Operations", "ops", [("sum by (op) (rate(sluice_store_operation_duration_seconds_count" + RATE + "))", "{{op}}")]),
        ("Latency p99", "s", [(p99("sluice_store_operation_duration_seconds", "le, op"), "{{op}}")]),
        ("Errors", "ops", [("sum by (kind) (rate(sluice_store_errors" + RATE + "))", "{{kind}}")]),
        ("Failed conditions (duplicates refused)", "ops", [("sum by (op) (rate(sluice_store_conditions_failed" + RATE + "))", "{{op}}")]),
    ]),
    "sluice-workflows": ("sluice: workflows and files", [
        ("Workflows started", "ops", [("sum by (type) (rate(sluice_orchestrator_started" + RATE + "))", "{{type}}")]),
        ("Signals", "ops", [("sum by (type) (rate(sluice_orchestrator_signals" + RATE + "))", "{{type}}")]),
        ("Orders settled by the saga", "ops", [("sum by (status) (rate(sluice_orchestrator_orders" + RATE + "))", "{{status}}")]),
        ("Files", "ops", [("sum(rate(sluice_files_processed" + RATE + "))", "processed"),
                          ("sum by (step) (rate(sluice_files_dead_lettered" + RATE + "))", "dead-lettered at {{step}}")]),
        ("Step failures", "ops", [("sum by (step) (rate(sluice_files_step_failures" + RATE + "))", "{{step}}")]),
        ("Bytes inspected", "Bps", [("sum(rate(sluice_files_bytes_inspected" + RATE + "))", "bytes/s")]),
    ]),
    "sluice-services": ("sluice: services (rate, errors, duration)", [
        ("processor: messages", "ops", [("sum by (outcome) (rate(sluice_processor_messages" + RATE + "))", "{{outcome}}")]),
        ("processor: duration", "s", [(p99("sluice_processor_duration_seconds", "le, kind"), "p99 {{kind}}")]),
        ("transformer: routed", "ops", [("sum by (outcome) (rate(sluice_transformer_routed" + RATE + "))", "{{outcome}}")]),
        ("transformer: deliveries", "ops", [("sum by (outcome) (rate(sluice_transformer_deliveries" + RATE + "))", "{{outcome}}")]),
        ("transformer: attempt duration", "s", [(p99("sluice_transformer_attempt_duration_seconds", "le, kind"), "p99 {{kind}}")]),
        ("notifier: deliveries", "ops", [("sum by (outcome) (rate(sluice_notifier_deliveries" + RATE + "))", "{{outcome}}")]),
        ("notifier: attempt duration", "s", [(p99("sluice_notifier_attempt_duration_seconds", "le, protocol"), "p99 {{protocol}}")]),
        ("file-ingest: notifications", "ops", [("sum by (outcome) (rate(sluice_files_notifications" + RATE + "))", "{{outcome}}")]),
        ("pull restarts", "ops", [("sum by (service) (rate(sluice_pull_restarts" + RATE + "))", "{{service}}")]),
    ]),
}


def dashboard(uid, title, panels):
    out = []
    for i, (ptitle, unit, queries) in enumerate(panels):
        out.append({
            "id": i + 1,
            "type": "timeseries",
            "title": ptitle,
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [
                {"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend,
                 "datasource": {"type": "prometheus", "uid": "prometheus"}}
                for j, (expr, legend) in enumerate(queries)
            ],
        })
    return {
        "uid": uid,
        "title": title,
        "tags": ["sluice"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": out,
    }


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for uid, (title, panels) in DASHBOARDS.items():
        text = json.dumps(dashboard(uid, title, panels), indent=2) + "\n"
        path = OUT / f"{uid}.json"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        print("dashboards differ from scripts/dashboards.py (run it): " + ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
