"""A real sidecar's health port: /livez beside /healthz and /readyz, and the process and Python series every
Prometheus user expects of a Python process on /metrics."""

import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from goq.devenv.sidecars import SidecarProcess

Sidecars = Callable[..., dict[str, SidecarProcess]]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_livez_and_healthz_say_alive_and_readyz_says_ready(sidecars: Sidecars) -> None:
    orders = sidecars("orders")["orders"]
    assert get(f"{orders.health_url}/livez") == (200, "ok\n")
    assert get(f"{orders.health_url}/healthz") == (200, "ok\n")
    assert get(f"{orders.health_url}/readyz") == (200, "ready\n")
    assert get(f"{orders.health_url}/livez/nothing")[0] == 404


def test_metrics_carry_the_sidecar_processs_memory_cpu_and_garbage_collection(sidecars: Sidecars) -> None:
    orders = sidecars("orders")["orders"]
    status, text = get(f"{orders.health_url}/metrics")
    assert status == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert orders.process is not None
    with open(f"/proc/{orders.process.pid}/status") as status_file:
        [rss_kb] = [int(line.split()[1]) for line in status_file if line.startswith("VmRSS:")]
    resident = samples[("process_resident_memory_bytes", ())]
    assert 0.5 * rss_kb * 1024 < resident < 2 * rss_kb * 1024  # read from its /proc, as VmRSS
    assert samples[("process_cpu_seconds_total", ())] > 0
    assert samples[("process_open_fds", ())] > 0
    assert samples[("process_start_time_seconds", ())] > 0
    for generation in ("0", "1", "2"):
        assert ("python_gc_collections_total", (("generation", generation),)) in samples
        assert ("python_gc_objects_collected_total", (("generation", generation),)) in samples
    [info] = [labels for name, labels in samples if name == "python_info"]
    assert dict(info)["implementation"] == "CPython"
    assert samples[("goq_messages_sent_total", (("identity", "orders.default"),))] == 0  # GoQ's own still there
