"""Write manifests/grafana/goq-dashboard.json: the GoQ dashboard, built on the sidecars' goq_* metrics.

Run again after changing the panels: .venv/bin/python scripts/make-dashboard.py
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "manifests" / "grafana" / "goq-dashboard.json"

PANELS = [
    ("Send queue by identity", "timeseries", ["sum by (identity) (goq_send_queue_messages)"]),
    ("Receive queue by identity", "timeseries", ["sum by (identity) (goq_receive_queue_messages)"]),
    ("Leased to applications", "timeseries", ["sum by (identity) (goq_leased_messages)"]),
    (
        "Sent / delivered / received per second",
        "timeseries",
        [
            "sum by (identity) (rate(goq_messages_sent_total[5m]))",
            "sum by (identity) (rate(goq_messages_delivered_total[5m]))",
            "sum by (identity) (rate(goq_messages_received_total[5m]))",
        ],
    ),
    (
        "Delivery latency p50 / p99",
        "timeseries",
        [
            "histogram_quantile(0.5, sum by (le, identity) (rate(goq_delivery_latency_seconds_bucket[5m])))",
            "histogram_quantile(0.99, sum by (le, identity) (rate(goq_delivery_latency_seconds_bucket[5m])))",
        ],
    ),
    (
        "Attempts per delivered message (p99)",
        "timeseries",
        [
            "histogram_quantile(0.99, sum by (le, identity) (rate(goq_delivery_attempts_bucket[5m])))",
        ],
    ),
    (
        "Failed delivery attempts per second",
        "timeseries",
        ["sum by (identity) (rate(goq_delivery_attempts_failed_total[5m]))"],
    ),
    (
        "Poisoned per second by reason",
        "timeseries",
        ["sum by (identity, reason) (rate(goq_messages_poisoned_total[5m]))"],
    ),
    (
        "Refused deliveries (HMAC failures) by reason",
        "timeseries",
        [
            "sum by (identity, reason) (rate(goq_deliveries_refused_total[5m]))",
        ],
    ),
    (
        "Redelivered to applications per second",
        "timeseries",
        ["sum by (identity) (rate(goq_messages_redelivered_total[5m]))"],
    ),
    ("Duplicates recognised per second", "timeseries", ["sum by (identity) (rate(goq_messages_duplicate_total[5m]))"]),
    ("Metrics sink failures", "timeseries", ["sum by (sink) (rate(goq_metrics_sink_failures_total[5m]))"]),
]


def panel(index: int, title: str, kind: str, queries: list[str]) -> dict[str, object]:
    return {
        "id": index + 1,
        "title": title,
        "type": kind,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "targets": [{"refId": chr(65 + i), "expr": q} for i, q in enumerate(queries)],
    }


def dashboard() -> dict[str, object]:
    return {
        "title": "GoQ",
        "uid": "goq-overview",
        "schemaVersion": 39,
        "tags": ["goq"],
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {OUT}")
