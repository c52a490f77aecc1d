"""bench/ is scripts, not a package: its tests load its modules by path, through this one loader."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench(name: str, as_name: str | None = None) -> ModuleType:
    """bench/<name>.py as a module named ``as_name`` (default ``goq_bench_<name>``), so that two tests loading
    the same file do not share its module state. Its sibling ``stats``, which report.py and plot.py import by
    that name as bench/run.py runs them, is registered first."""
    if name != "stats":
        sys.modules.setdefault("stats", load_bench("stats"))
    spec = importlib.util.spec_from_file_location(as_name or f"goq_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
