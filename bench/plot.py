"""The run's figures as one PNG: throughput at 1 KiB and 64 KiB, latency percentiles, memory under a backlog."""

from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display: write files only
import matplotlib.pyplot as plt
from stats import LATENCY_KEYS, SIZES, size_label, throughput_row

GOQ_COLOUR, PEER_COLOUR = "#2a7ab0", "#b0b0b0"


def _throughput(ax: Any, results: dict[str, Any], size: str, key: str, unit: str) -> None:
    names, medians, lows, highs, colours = [], [], [], [], []
    for name, entry in results["systems"].items():
        runs = entry.get("throughput", {}).get(size)
        if not runs:
            continue
        row = throughput_row(runs)
        scale = row[key] / row["msgs_per_s"] if row["msgs_per_s"] else 0.0
        names.append(name)
        medians.append(row[key])
        lows.append(max(0.0, row[key] - row["min"] * scale))
        highs.append(max(0.0, row["max"] * scale - row[key]))
        colours.append(GOQ_COLOUR if entry.get("group") == "goq" else PEER_COLOUR)
    ax.barh(names, medians, xerr=[lows, highs], color=colours, capsize=2)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"{unit} (log scale; median, bars min-max)")
    ax.set_title(f"Throughput end to end, {size_label(size)}")
    ax.tick_params(axis="y", labelsize=7)


def _latency(ax: Any, results: dict[str, Any]) -> None:
    rows = [(n, e["latency"]) for n, e in results["systems"].items() if e.get("latency")]
    width = 0.8 / max(1, len(rows))
    for i, (name, latency) in enumerate(rows):
        xs = [k + i * width for k in range(len(LATENCY_KEYS))]
        colour = plt.get_cmap("tab20")(i % 20)  # eleven rows: more than the default ten colours
        ax.bar(xs, [max(0.01, float(latency[k])) for k in LATENCY_KEYS], width, label=name, color=colour)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(LATENCY_KEYS))])
    ax.set_xticklabels(["p50", "p90", "p99", "p99.9", "max"])
    ax.set_yscale("log")
    ax.set_ylabel("ms (log scale)")
    ax.set_title("Latency at 1,000 msg/s, 1 KiB")
    ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))


def _backlog(ax: Any, results: dict[str, Any]) -> None:
    backlog = results.get("backlog")
    if not backlog:
        ax.set_axis_off()
        ax.set_title("Backlog: not run")
        return
    samples = backlog["samples"]
    ts = [s["t"] for s in samples]
    for process in ("orders", "billing", "mongod"):
        ax.plot(ts, [s.get(process, 0.0) for s in samples], label=f"{process} RSS")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MB")
    ax.set_title(f"Memory while {backlog['count']:,} persistent messages queue up")
    queued = ax.twinx()
    queued.plot(ts, [s["queued"] for s in samples], "k:", label="queued at the receiver")
    queued.set_ylabel("messages queued")
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = queued.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, fontsize=7, loc="upper left")


def write(results: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(2, 2, figsize=(15, 11))
    _throughput(axes[0][0], results, SIZES[0], "msgs_per_s", "messages/s")
    _throughput(axes[0][1], results, SIZES[1], "mb_per_s", "MB/s")
    _latency(axes[1][0], results)
    _backlog(axes[1][1], results)
    run = "quick" if results["settings"]["quick"] else "full"
    figure.suptitle(
        f"GoQ beside RabbitMQ, NATS JetStream and a bare gRPC hop ({run} run, {results['finished']} UTC,"
        f" load average {results['load_average']})"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
