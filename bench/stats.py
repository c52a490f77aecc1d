"""Pure helpers of the benchmark: percentiles, summaries of repeated runs and the tables (text and Markdown).

No I/O here, so that tests can check the figures without starting a server.
"""

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

LATENCY_KEYS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
SIZES = ("1024", "65536")
STREAM = "gRPC stream"


def goq_row(kind: str, api_label: str) -> str:
    """The name of GoQ's row for messages of ``kind`` (persistent, transient) sent through ``api_label``."""
    return f"GoQ {kind}, {api_label}"


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


def size_label(size: str) -> str:
    return f"{int(size) // 1024} KiB"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
        return lines + ["| " + " | ".join(row) + " |" for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*headers)] + [fmt.format(*row) for row in rows]


def throughput_table(results: Mapping[str, Any], markdown: bool) -> list[str]:
    headers = ["system"]
    for size in SIZES:
        label = size_label(size)
        headers += [f"{label} msg/s", "min", "max", f"{label} MB/s"]
    rows = []
    for name, entry in results.get("systems", {}).items():
        cells = [name]
        for size in SIZES:
            runs = entry.get("throughput", {}).get(size)
            if runs:
                row = throughput_row(runs)
                cells += [f"{row[k]:,.0f}" for k in ("msgs_per_s", "min", "max")] + [f"{row['mb_per_s']:.1f}"]
            else:
                cells += ["-"] * 4
        rows.append(cells)
    return _table(headers, rows, markdown) if rows else []


def engine_ratios(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """For each GoQ kind and size: the engine's own rate, streaming gRPC end to end, and their ratio."""
    found = []
    for kind, sizes in results.get("engine", {}).items():
        for size in SIZES:
            runs = sizes.get(size)
            if not runs:
                continue
            engine = statistics.median(float(r["msgs_per_s"]) for r in runs)
            drain = statistics.median(float(r["drain_msgs_per_s"]) for r in runs)
            stream_runs = results.get("systems", {}).get(f"{kind}, {STREAM}", {}).get("throughput", {}).get(size)
            stream = throughput_row(stream_runs)["msgs_per_s"] if stream_runs else None
            found.append(
                {
                    "kind": kind,
                    "size": size,
                    "engine": engine,
                    "drain": drain,
                    "stream": stream,
                    "ratio": stream / engine if stream and engine else None,
                }
            )
    return found


def engine_table(results: Mapping[str, Any], markdown: bool) -> list[str]:
    headers = ["GoQ", "size", "engine msg/s", "gRPC stream e2e msg/s", "stream / engine", "receive path alone msg/s"]
    rows = [
        [
            e["kind"],
            size_label(e["size"]),
            f"{e['engine']:,.0f}",
            f"{e['stream']:,.0f}" if e["stream"] else "-",
            f"{e['ratio']:.0%}" if e["ratio"] else "-",
            f"{e['drain']:,.0f}",
        ]
        for e in engine_ratios(results)
    ]
    return _table(headers, rows, markdown) if rows else []


def latency_table(results: Mapping[str, Any], markdown: bool) -> list[str]:
    headers = ["system", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"]
    rows = []
    for name, entry in results.get("systems", {}).items():
        latency = entry.get("latency")
        if latency:
            rows.append([name] + [f"{float(latency[k]):.2f}" for k in LATENCY_KEYS])
    return _table(headers, rows, markdown) if rows else []


def resources_table(results: Mapping[str, Any], markdown: bool) -> list[str]:
    """Memory and CPU per process. GoQ's variants share their processes: they are shown once, with the CPU
    of each API's 1 KiB run."""
    headers = ["system", "process", "RSS idle MB", "RSS after MB", "CPU s per 10k msgs"]
    rows = []
    for name, entry in results.get("systems", {}).items():
        for process, idle in entry.get("rss_idle_mb", {}).items():
            after = entry.get("rss_after_mb", {}).get(process, 0.0)
            cpu = entry.get("cpu_s_per_10k", {}).get(process)
            rows.append([name, process, f"{idle:.0f}", f"{after:.0f}", f"{cpu:.2f}" if cpu is not None else "-"])
    return _table(headers, rows, markdown) if rows else []


def scale_table(results: Mapping[str, Any], markdown: bool) -> list[str]:
    s = results.get("scale")
    if not s:
        return []
    headers = [
        "identities",
        "msgs each",
        "received of accepted",
        "refused / poisoned / lost",
        "failed attempts",
        "msg/s in all",
        "p50 ms",
        "p99 ms",
        "max ms",
        "start all s",
        "sidecar RSS median idle/after MB",
        "all sidecars after MB",
        "mongod after MB",
    ]
    row = [
        f"{s['identities']}",
        f"{s['count_each']:,}",
        f"{s['received']:,} of {s.get('accepted', s['received']):,}",
        f"{s.get('refused', 0):,} / {s.get('poisoned', 0):,} / {s.get('lost', 0):,}",
        f"{s.get('delivery_counters', {}).get('goq_delivery_attempts_failed', 0):,.0f}",
        f"{s['msgs_per_s']:,.0f}",
        f"{s['p50_ms']:.1f}",
        f"{s['p99_ms']:.1f}",
        f"{s['max_ms']:.1f}",
        f"{s['start_all_s']:.1f}",
        f"{s['sidecar_rss_idle_mb']['median']:.0f} / {s['sidecar_rss_after_mb']['median']:.0f}",
        f"{s['sidecar_rss_after_mb']['sum']:,.0f}",
        f"{s['mongod_rss_mb']['after']:.0f}",
    ]
    return _table(headers, [row], markdown)


def backlog_table(results: Mapping[str, Any], markdown: bool) -> list[str]:
    b = results.get("backlog")
    if not b:
        return []
    holder = b.get("holder", "billing")  # the sidecar that holds the backlog
    peak = max((s.get(holder, 0.0) for s in b["samples"]), default=0.0)
    headers = [
        "queued",
        "built in s",
        f"{holder} (holding it) RSS idle / peak / restarted / drained MB",
        "mongod RSS full MB",
        "restart: ready s",
        "first delivery s",
        "drain msg/s",
    ]

    def mb(value: float | None) -> str:
        return f"{value:.0f}" if value is not None else "-"

    failed = [r for r in b.get("restarts", []) if r["error"]]
    row = [
        f"{b['count']:,}",
        f"{b['built_s']:.0f}",
        f"{b['rss_idle_mb'].get(holder, 0):.0f} / {peak:.0f} / {mb(b['rss_after_restart_mb'])} / "
        f"{mb(b['rss_after_drain_mb'])}",
        f"{b['rss_full_mb'].get('mongod', 0):.0f}",
        f"{b['ready_s']:.1f}" if b["ready_s"] is not None else f"failed {len(failed)} times",
        f"{b['first_delivery_s']:.1f}" if b.get("first_delivery_s") is not None else "-",
        f"{b['drain_msgs_per_s']:,.0f}" if b.get("drain_msgs_per_s") is not None else "-",
    ]
    return _table(headers, [row], markdown)


FLOOR = "MongoDB alone (GoQ's writes)"


def floor_table(results: Mapping[str, Any], markdown: bool) -> list[str]:
    """The floor beside GoQ persistent over gRPC streaming and the peers: throughput per size and latency."""
    found = results.get("floor")
    if not found:
        return []
    headers = ["system"] + [f"{size_label(s)} msg/s" for s in SIZES] + ["64 KiB MB/s", "p50 ms", "p99 ms"]
    rows = []
    for name, throughput, latency in _floor_rows(results, found):
        cells = [name]
        for size in SIZES:
            cells.append(f"{throughput[size]['msgs_per_s']:,.0f}" if size in throughput else "-")
        cells.append(f"{throughput['65536']['mb_per_s']:.1f}" if "65536" in throughput else "-")
        cells += [f"{float(latency[k]):.2f}" if latency else "-" for k in ("p50_ms", "p99_ms")]
        rows.append(cells)
    return _table(headers, rows, markdown)


def _floor_rows(
    results: Mapping[str, Any], found: Mapping[str, Any]
) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]]:
    rows: list[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]] = [
        (FLOOR, found.get("throughput", {}), found.get("latency"))
    ]
    for name, entry in results.get("systems", {}).items():
        if name == goq_row("persistent", STREAM) or entry.get("group") == "peer":
            runs = entry.get("throughput", {})
            throughput = {size: throughput_row(runs[size]) for size in SIZES if runs.get(size)}
            rows.append((name, throughput, entry.get("latency")))
    return rows


def hygiene_lines(results: Mapping[str, Any]) -> list[str]:
    lines = []
    for entry in results.get("hygiene", []):
        held = {
            name: {k: v for k, v in s.items() if k in ("send_queue", "receive_queue", "in_flight") and v}
            for name, s in entry["found"].items()
        }
        held = {name: h for name, h in held.items() if h}
        lines.append(f"- before {entry['before']}: the sidecars held {held}; waited {entry['waited_s']} s")
    return lines


def tables(results: Mapping[str, Any], markdown: bool) -> dict[str, list[str]]:
    return {
        "throughput": throughput_table(results, markdown),
        "engine": engine_table(results, markdown),
        "latency": latency_table(results, markdown),
        "floor": floor_table(results, markdown),
        "resources": resources_table(results, markdown),
        "scale": scale_table(results, markdown),
        "backlog": backlog_table(results, markdown),
    }


TITLES = {
    "throughput": "Throughput, end to end (median of the runs, min, max)",
    "engine": "GoQ's engine rate and streaming gRPC's share of it",
    "latency": "Latency end to end at a fixed 1,000 msg/s, 1 KiB",
    "floor": "The floor: MongoDB alone making GoQ's writes for each persistent message, beside GoQ and the peers",
    "resources": "Memory and CPU",
    "scale": "Many identities at once (persistent, 1 KiB, in a ring)",
    "backlog": "A backlog of persistent messages for a destination that is down, restarted and drained",
}


def text_table(results: Mapping[str, Any]) -> str:
    """The side-by-side tables printed at the end of a run."""
    lines: list[str] = []
    for key, table in tables(results, markdown=False).items():
        if table:
            lines += [TITLES[key], *table, ""]
    return "\n".join(lines)


def markdown_tables(results: Mapping[str, Any]) -> str:
    """The same figures as Markdown tables, for docs/benchmarks.md."""
    lines: list[str] = []
    for key, table in tables(results, markdown=True).items():
        if table:
            lines += [f"### {TITLES[key]}", "", *table, ""]
    return "\n".join(lines)
