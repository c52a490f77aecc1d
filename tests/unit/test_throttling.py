"""Refusals logged in aggregate: the first of a reason in full, then at most one line per reason per
interval with how many happened since and the last detail; the count stays exact."""

import asyncio
import logging

import pytest

from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.refusing import Refusals
from goq.sidecar.domain.throttling import ThrottledLog

FIRST = "{kind}: {detail}"
MORE = "{count} more {kind} in {seconds:.0f}s, last: {detail}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.throttling"]


def throttled(clock: FakeClock) -> ThrottledLog:
    return ThrottledLog(logging.getLogger("test.throttling"), FIRST, MORE, interval=10.0, clock=clock)


def test_a_flood_of_one_kind_writes_the_first_line_then_one_summary_per_interval(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = throttled(clock)
    for n in range(30 * 1024):  # 30,720 events in 30 s
        clock.now = 1000.0 + n / 1024
        log.event("bad-signature", f"envelope {n}")

    assert lines(caplog) == [
        "bad-signature: envelope 0",
        "10240 more bad-signature in 10s, last: envelope 10240",
        "10240 more bad-signature in 10s, last: envelope 20480",
    ]
    clock.now = 1030.0
    log.flush()
    assert lines(caplog)[3:] == ["10239 more bad-signature in 10s, last: envelope 30719"]


def test_each_kind_has_its_own_first_line_and_interval(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    log = throttled(clock)
    log.event("unknown-key", "a")
    log.event("malformed", "b")
    log.event("unknown-key", "c")

    assert lines(caplog) == ["unknown-key: a", "malformed: b"]


def test_after_a_quiet_interval_the_next_event_is_logged_in_full(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = throttled(clock)
    log.event("malformed", "a")
    clock.now += 11
    log.event("malformed", "b")

    assert lines(caplog) == ["malformed: a", "malformed: b"]


def test_flush_writes_nothing_before_the_interval_has_passed(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = throttled(clock)
    log.event("malformed", "a")
    log.event("malformed", "b")
    clock.now += 5
    log.flush()

    assert lines(caplog) == ["malformed: a"]


async def test_on_an_event_loop_the_tail_of_a_flood_is_summed_up_by_a_timer(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    log = ThrottledLog(logging.getLogger("test.throttling"), FIRST, MORE, interval=0.05, clock=loop.time)
    for n in range(1000):
        log.event("bad-signature", f"envelope {n}")
    assert lines(caplog) == ["bad-signature: envelope 0"]

    await asyncio.sleep(0.2)

    assert lines(caplog)[1:] == ["999 more bad-signature in 0s, last: envelope 999"]


def test_refusals_are_counted_exactly_while_their_log_is_throttled(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    counters = Counters()
    refusals = Refusals(counters, logging.getLogger("test.throttling"), clock=clock)
    for _ in range(5000):
        refusals.refuse("bad-signature", "signature does not match (key 'k1')")
    refusals.refuse("batch-too-large", "a batch of 20000 envelopes", 20_000)

    assert counters.refused == {"bad-signature": 5000, "batch-too-large": 20_000}
    assert lines(caplog) == [
        "refused a delivery (bad-signature): signature does not match (key 'k1')",
        "refused a delivery (batch-too-large): a batch of 20000 envelopes",
    ]


async def test_closing_writes_what_is_held_back_and_leaves_no_timer(caplog: pytest.LogCaptureFixture) -> None:
    """A stopping owner says what it held back itself, rather than a timer firing later into whatever runs
    next on the loop."""
    caplog.set_level(logging.WARNING, logger="test.throttling")
    log = ThrottledLog(logging.getLogger("test.throttling"), FIRST, MORE, interval=0.05)
    log.event("busy", "a")
    log.event("busy", "b")
    log.close()
    assert lines(caplog) == ["busy: a", "1 more busy in 0s, last: b"]
    await asyncio.sleep(0.1)
    assert lines(caplog) == ["busy: a", "1 more busy in 0s, last: b"]
