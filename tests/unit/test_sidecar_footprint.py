"""A sidecar outside Kubernetes does not load the Kubernetes client library (about 30 MB per pod)."""

import subprocess
import sys


def test_the_sidecar_runtime_does_not_import_the_kubernetes_client_until_it_needs_it() -> None:
    code = "import sys, goq.cli.sidecar; print(sorted(m for m in sys.modules if m.startswith('kubernetes')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
