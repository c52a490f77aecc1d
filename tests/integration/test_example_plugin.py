"""The example plug-in in examples/ is found through its entry point and receives poisoned messages."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from goq.devenv.sidecars import SidecarProcess

from .conftest import App

ROOT = Path(__file__).resolve().parents[2]
Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


async def test_the_example_sink_is_installed_discovered_and_receives_poisoned_messages(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    command += ["--target", str(site), str(ROOT / "examples" / "poison-sink-plugin")]
    installed = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    summary = tmp_path / "poisoned.txt"
    spec = {"poisonQueue": {"type": "summary", "path": str(summary)}}
    orders = sidecars(
        "orders",
        # No empty entry: it would mean the working directory, whose operator/ shadows the standard library.
        PYTHONPATH=os.pathsep.join(p for p in [str(site), os.environ.get("PYTHONPATH", "")] if p),
        GOQ_QUEUE_SPEC=json.dumps(spec),
        GOQ_RETRY_POLICY=json.dumps({"maxAttempts": 1}),
    )["orders"]
    (result,) = await apps(orders).send("nowhere", [b"x"])
    for _ in range(200):
        if summary.exists() and summary.read_text():
            break
        await asyncio.sleep(0.05)
    (line,) = summary.read_text().splitlines()
    assert f"orders.default {result.accepted.id} max-attempts: 1 attempts failed" in line
