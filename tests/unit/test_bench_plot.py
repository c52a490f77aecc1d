"""The benchmark's plot (bench/plot.py) is drawn from a run's results, whatever scenarios the run left out."""

from pathlib import Path

from .bench_modules import load_bench

RESULTS = {
    "settings": {"quick": True},
    "finished": "2026-11-28 07:00",
    "load_average": "0.10 0.20 0.30",
    "systems": {
        "GoQ persistent, gRPC stream": {
            "group": "goq",
            "throughput": {
                "1024": [{"msgs_per_s": 9000.0, "mb_per_s": 9.2}, {"msgs_per_s": 11000.0, "mb_per_s": 11.3}],
                "65536": [{"msgs_per_s": 600.0, "mb_per_s": 39.3}],
            },
            "latency": {"p50_ms": 1.0, "p90_ms": 1.5, "p99_ms": 3.0, "p999_ms": 8.0, "max_ms": 12.0},
        },
        "NATS JetStream": {"group": "peer", "throughput": {"1024": [{"msgs_per_s": 19000.0, "mb_per_s": 19.5}]}},
    },
    "backlog": {
        "count": 1000,
        "samples": [
            {"t": 0.0, "queued": 0, "orders": 70.0, "billing": 70.0},
            {"t": 1.0, "queued": 1000, "billing": 75.0},
        ],
    },
}


def test_the_plot_is_a_png_even_without_scale_figures(tmp_path: Path) -> None:
    plot = load_bench("plot")
    path = tmp_path / "benchmarks.png"
    plot.write(RESULTS, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
