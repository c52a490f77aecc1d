"""A sidecar loads neither the Kubernetes client library (about 30 MB per pod), aiohttp (11 MB) nor
cryptography (9 MB)."""

import json
import subprocess
import sys


def loaded_modules(prefixes: tuple[str, ...]) -> list[str]:
    """Modules under ``prefixes`` that a fresh interpreter holds after importing the sidecar's runtime."""
    code = (
        "import json, sys, goq.cli.sidecar, goq.sidecar.runtime, goq.sidecar.adapters.kube.api;"
        f" print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules: list[str] = json.loads(output)
    return modules


def test_the_sidecar_runtime_does_not_import_the_kubernetes_client() -> None:
    assert loaded_modules(("kubernetes",)) == []


def test_the_sidecar_serves_http_and_calls_the_api_server_without_aiohttp() -> None:
    assert loaded_modules(("aiohttp", "multidict", "yarl")) == []


def test_the_sidecar_checks_its_tls_files_without_the_cryptography_library() -> None:
    """About 9 MB per pod: OpenSSL through the standard library does the sidecar's few checks."""
    assert loaded_modules(("cryptography",)) == []
