"""Pure helpers of the benchmark: percentiles, summaries of repeated runs, the text and Markdown tables.

No I/O here, so that tests can check the figures without starting a server.
"""

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

LATENCY_KEYS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0-100) of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max of latencies in milliseconds."""
    return {
        "p50_ms": percentile(latencies_ms, 50),
        "p90_ms": percentile(latencies_ms, 90),
        "p99_ms": percentile(latencies_ms, 99),
        "p999_ms": percentile(latencies_ms, 99.9),
        "max_ms": max(latencies_ms, default=0.0),
    }


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, min and max of repeated measurements."""
    return statistics.median(values), min(values), max(values)


def throughput_row(runs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Median [min, max] msg/s and median MB/s over runs."""
    rates = [float(r["msgs_per_s"]) for r in runs]
    median, low, high = spread(rates)
    return {
        "msgs_per_s": median,
        "min": low,
        "max": high,
        "mb_per_s": statistics.median(float(r["mb_per_s"]) for r in runs),
    }


def text_table(results: Mapping[str, Any]) -> str:
    """The side-by-side table printed at the end of a run."""
    lines = [f"{'system':<22}{'msg/s median [min-max]':>30}{'MB/s':>8}" + "".join(f"{k[:-3]:>9}" for k in LATENCY_KEYS)]
    for name, entry in results["systems"].items():
        row = throughput_row(entry["throughput"]) if entry["throughput"] else None
        rate = f"{row['msgs_per_s']:,.0f} [{row['min']:,.0f}-{row['max']:,.0f}]" if row else "-"
        mbs = f"{row['mb_per_s']:.1f}" if row else "-"
        latency = entry.get("latency")
        cells = "".join(f"{float(latency[k]):>9.2f}" if latency else f"{'-':>9}" for k in LATENCY_KEYS)
        lines.append(f"{name:<22}{rate:>30}{mbs:>8}{cells}")
    lines.append("(latency columns: ms end to end at a fixed 1,000 msg/s)")
    lines.append("")
    lines.append(f"{'system':<22}{'process':<16}{'RSS idle MB':>12}{'RSS after MB':>13}{'CPU s/10k':>10}")
    for name, entry in results["systems"].items():
        for process, idle in entry["rss_idle_mb"].items():
            after = entry["rss_after_mb"].get(process, 0.0)
            cpu = entry.get("cpu_s_per_10k", {}).get(process)
            cpu_text = f"{cpu:.2f}" if cpu is not None else "-"
            lines.append(f"{name:<22}{process:<16}{idle:>12.0f}{after:>13.0f}{cpu_text:>10}")
    return "\n".join(lines)


def markdown_tables(results: Mapping[str, Any]) -> str:
    """The same figures as Markdown tables, for docs/benchmarks.md."""
    lines = [
        "| system | msg/s median | min | max | MB/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in results["systems"].items():
        row = throughput_row(entry["throughput"]) if entry["throughput"] else None
        cells = (
            [f"{row['msgs_per_s']:,.0f}", f"{row['min']:,.0f}", f"{row['max']:,.0f}", f"{row['mb_per_s']:.1f}"]
            if row
            else ["-"] * 4
        )
        latency = entry.get("latency")
        cells += [f"{float(latency[k]):.2f}" if latency else "-" for k in LATENCY_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| system | process | RSS idle MB | RSS after MB | CPU s per 10k msgs |", "|---|---|---:|---:|---:|"]
    for name, entry in results["systems"].items():
        for process, idle in entry["rss_idle_mb"].items():
            after = entry["rss_after_mb"].get(process, 0.0)
            cpu = entry.get("cpu_s_per_10k", {}).get(process)
            lines.append(
                f"| {name} | {process} | {idle:.0f} | {after:.0f} | "
                + (f"{cpu:.2f}" if cpu is not None else "-")
                + " |"
            )
    return "\n".join(lines)
