"""The sidecar's event loop (GOQ_EVENT_LOOP): uvloop when chosen or, with ``auto``, when installed; asyncio's own
otherwise; a choice that cannot be honoured stops the start with the reason."""

import asyncio
import sys

import pytest
import uvloop

from goq.cli.sidecar import event_loop_factory
from goq.errors import ConfigError
from goq.sidecar.settings import SidecarSettings


def run_on(choice: str) -> type[asyncio.AbstractEventLoop]:
    """The class of the loop a coroutine runs on, with the sidecar's choice of loop."""

    async def loop_class() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=event_loop_factory(choice)) as runner:
        return runner.run(loop_class())


def test_auto_and_uvloop_run_on_uvloop_where_it_is_installed() -> None:
    assert run_on("auto") is uvloop.Loop
    assert run_on("uvloop") is uvloop.Loop


def test_asyncio_runs_on_asyncios_own_loop() -> None:
    assert not issubclass(run_on("asyncio"), uvloop.Loop)


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert event_loop_factory("auto") is None
    with pytest.raises(ConfigError, match="GOQ_EVENT_LOOP=uvloop, but uvloop cannot be imported"):
        event_loop_factory("uvloop")


def test_the_setting_defaults_to_asyncio_and_refuses_other_values() -> None:
    assert SidecarSettings.from_env({"GOQ_IDENTITY": "orders"}).event_loop == "asyncio"
    assert SidecarSettings.from_env({"GOQ_IDENTITY": "orders", "GOQ_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(ConfigError, match="GOQ_EVENT_LOOP must be one of asyncio, uvloop, auto"):
        SidecarSettings.from_env({"GOQ_IDENTITY": "orders", "GOQ_EVENT_LOOP": "trio"})
