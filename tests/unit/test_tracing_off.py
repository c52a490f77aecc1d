"""Tracing is off unless an OTLP endpoint is set, and then costs nothing: OpenTelemetry is not even loaded."""

import subprocess
import sys

import pytest

from goq.sidecar.core.tracing import tracing_from_env


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_without_an_endpoint_there_is_no_tracer() -> None:
    assert tracing_from_env("orders.default", "orders-0", {}) is None
    assert tracing_from_env("orders.default", "orders-0", {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}) is None


def test_the_sidecar_runtime_does_not_load_opentelemetry_when_tracing_is_off() -> None:
    code = (
        "import sys, goq.cli.sidecar, goq.sidecar.runtime;"
        " from goq.sidecar.core.tracing import tracing_from_env;"
        " assert tracing_from_env('orders.default', 'orders-0', {}) is None;"
        " print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_endpoint_without_opentelemetry_installed_stops_the_start_saying_what_to_install() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"  # as if the extra were not installed
        "from goq.sidecar.core.tracing import tracing_from_env\n"
        "tracing_from_env('orders.default', 'orders-0', {'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:4317'})\n"
    )
    done = run(code)
    assert done.returncode == 1
    assert "ConfigError" in done.stderr
    assert "pip install 'goq[tracing]'" in done.stderr


def test_an_endpoint_with_opentelemetry_installed_gives_a_tracer() -> None:
    tracing = tracing_from_env("orders.default", "orders-0", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert tracing is not None
    tracing.close()  # nothing was recorded: nothing to send to the (unreachable) endpoint


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_either_standard_endpoint_variable_turns_it_on(variable: str) -> None:
    tracing = tracing_from_env("orders.default", "orders-0", {variable: "http://127.0.0.1:9"})
    assert tracing is not None
    tracing.close()
