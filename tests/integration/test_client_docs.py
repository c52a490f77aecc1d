"""docs/client.md's examples, run as a reader would run them (each block a Python process, in the document's
order) against real sidecars, so the guide cannot drift from the client."""

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from goq.client import Client
from goq.devenv.sidecars import SidecarProcess

GUIDE = Path(__file__).parents[2] / "docs" / "client.md"
BLOCK = re.compile(r"^(?:<!-- run: (\w+) -->\n)?```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
Sidecars = Callable[..., dict[str, SidecarProcess]]


def examples() -> list[tuple[str | None, str]]:
    """Every Python block of the guide: the identity it runs as (its ``<!-- run: ... -->`` line) and its code."""
    return [(identity or None, code) for identity, code in BLOCK.findall(GUIDE.read_text())]


def test_every_python_example_of_the_guide_says_which_sidecar_it_runs_against() -> None:
    found = examples()
    assert len(found) >= 10
    assert [code.splitlines()[0] for identity, code in found if identity not in ("orders", "billing")] == []


def test_the_guides_examples_run_against_real_sidecars_and_do_what_they_say(sidecars: Sidecars, tmp_path: Path) -> None:
    group = sidecars("orders", "billing")
    for number, (identity, code) in enumerate(examples(), 1):
        assert identity is not None
        env = {**os.environ, "GOQ_SIDECAR": group[identity].grpc_target}
        ran = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90
        )
        assert ran.returncode == 0, f"example {number} (as {identity}) failed:\n{code}\n{ran.stdout}{ran.stderr}"

    with Client(group["orders"].grpc_target) as orders, Client(group["billing"].grpc_target) as billing:
        sent, received = orders.stats(), billing.stats()
    assert (sent.sent, sent.send_queue) == (8, 0)  # 1 + 2 + 3 + order-44 + the file; the refused one not
    assert (received.received, received.acknowledged, received.poisoned) == (8, 8, 1)
    assert (received.receive_queue, received.in_flight) == (0, 0)
    (copy,) = set(tmp_path.glob("*.bin")) - {tmp_path / "scan.bin"}  # the large message, read back
    assert copy.read_bytes() == (tmp_path / "scan.bin").read_bytes()
