"""Both mounted Secrets a sidecar follows, the key ring and the TLS files, behave as one: a directory that
turns broken keeps what is in force with one warning and is taken once it is good again, a read that
failed is tried again at the next poll, and the directory is read off the event loop, so a slow volume
stalls no message."""

import asyncio
import datetime
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from goq.devenv.secret_volume import SecretVolume
from goq.errors import ConfigError
from goq.operator.x509_issuing import Authority, new_authority, sign_leaf
from goq.sidecar.adapters import secret_following
from goq.sidecar.adapters.keys_watching import KeyringFollower
from goq.sidecar.adapters.peer_tls import MutualTls
from goq.sidecar.adapters.secret_following import SecretFollower
from goq.signing import Keyring

NOW = datetime.datetime.now(datetime.UTC)
Files = Mapping[str, bytes]


@dataclass
class Case:
    """One kind of followed Secret: a good content, a broken one, another good one, and how to follow it."""

    logger: str
    first: Files
    broken: Files
    second: Files
    follow: Callable[[Path, float], SecretFollower[Any]]
    """A follower of the directory at ``path``, looking every ``interval`` seconds once running."""

    def start(self, path: Path, *, interval: float = 2.0) -> tuple[SecretVolume, SecretFollower[Any]]:
        volume = SecretVolume(path, self.first)
        follower = self.follow(volume.path, interval)
        follower.poll()  # the key ring's first look reads once; the TLS files were read at start
        return volume, follower


def leaf(ca: Authority) -> tuple[bytes, bytes]:
    day = datetime.timedelta(days=1)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier("spiffe://example.org/ns/shop/goq/orders")]
    return sign_leaf(ca, "orders", names, not_before=NOW - day, not_after=NOW + day)


def tls_case() -> Case:
    ca = new_authority("test-ca", NOW, datetime.timedelta(days=30))
    (cert1, key1), (cert2, key2) = leaf(ca), leaf(ca)
    return Case(
        "goq.sidecar.tls",
        {"tls.crt": cert1, "tls.key": key1, "ca.crt": ca.cert},
        {"tls.crt": cert2, "tls.key": key1, "ca.crt": ca.cert},  # the new certificate with the old key
        {"tls.crt": cert2, "tls.key": key2, "ca.crt": ca.cert},
        lambda path, interval: MutualTls(path, interval=interval),
    )


def keys_case() -> Case:
    k1, k2 = b"1" * 32, b"2" * 32
    return Case(
        "goq.sidecar.keys",
        {"k1": k1, "active": b"k1"},
        {"k1": k1, "active": b"k2"},  # ``active`` names a key that is not there
        {"k1": k1, "k2": k2, "active": b"k2"},
        lambda path, interval: KeyringFollower(path, Keyring.from_directory(path), interval=interval),
    )


@pytest.fixture(params=["key ring", "TLS files"])
def case(request: pytest.FixtureRequest) -> Case:
    return keys_case() if request.param == "key ring" else tls_case()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_directory_that_turns_broken_then_good_keeps_the_last_good_content_then_takes_the_new(
    case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    volume, follower = case.start(tmp_path / "secret")
    first = follower.in_force
    caplog.set_level(logging.INFO, case.logger)

    volume.write(case.broken)

    assert [follower.poll() for _ in range(3)] == [False] * 3
    assert follower.in_force == first
    assert follower.reloads == 0
    assert len(warnings(caplog)) == 1, "one warning per problem, not one per poll"
    assert "changed but does not load; keeping" in warnings(caplog)[0]

    volume.write(case.second)

    assert follower.poll() is True
    assert follower.in_force != first
    assert follower.reloads == 1
    assert len(warnings(caplog)) == 1
    assert "reloaded: " in caplog.records[-1].getMessage()


def test_a_read_that_failed_is_tried_again_at_the_next_poll_without_a_further_change(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume, follower = case.start(tmp_path / "secret")
    load = follower.load
    failures = [ConfigError("the volume answered EIO")]

    def flaky(directory: Path) -> object:
        if failures:
            raise failures.pop()
        return load(directory)

    monkeypatch.setattr(follower, "load", flaky)
    volume.write(case.second)

    assert follower.poll() is False
    assert follower.reloads == 0
    assert follower.poll() is True  # nothing changed since: the failed read alone is reason to look again
    assert follower.reloads == 1


async def test_a_slow_volume_is_read_off_the_event_loop_and_stalls_nothing(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume, follower = case.start(tmp_path / "secret", interval=0.01)
    loop_thread = threading.get_ident()
    threads: dict[str, set[int]] = {"fingerprint": set(), "load": set()}
    load, stat = follower.load, secret_following.fingerprint

    def slow_load(directory: Path) -> object:
        threads["load"].add(threading.get_ident())
        time.sleep(0.5)  # a volume that takes half a second to answer
        return load(directory)

    def recorded_fingerprint(directory: Path) -> secret_following.Fingerprint:
        threads["fingerprint"].add(threading.get_ident())
        return stat(directory)

    monkeypatch.setattr(follower, "load", slow_load)
    monkeypatch.setattr(secret_following, "fingerprint", recorded_fingerprint)
    volume.write(case.second)
    task = asyncio.create_task(follower.run())
    ticks, longest, last = 0, 0.0, time.monotonic()
    try:
        for _ in range(500):  # up to about 5 s
            await asyncio.sleep(0.01)
            now = time.monotonic()
            ticks, longest, last = ticks + 1, max(longest, now - last), now
            if follower.reloads:
                break
    finally:
        task.cancel()
    assert follower.reloads == 1
    assert threads["load"], "never looked"
    assert loop_thread not in threads["load"]
    assert threads["fingerprint"], "never looked"
    assert loop_thread not in threads["fingerprint"]
    assert ticks >= 20, "the loop did not run while the directory was read"
    assert longest < 0.4, f"the loop stalled for {longest:.2f} s"


async def test_a_failure_to_look_is_logged_and_the_running_follower_tries_again(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    volume, follower = case.start(tmp_path / "secret", interval=0.01)
    load = follower.load
    failures = [RuntimeError("unexpected")]

    def failing_once(directory: Path) -> object:
        if failures:
            raise failures.pop()
        return load(directory)

    monkeypatch.setattr(follower, "load", failing_once)
    volume.write(case.second)
    task = asyncio.create_task(follower.run())
    try:
        for _ in range(500):
            await asyncio.sleep(0.01)
            if follower.reloads:
                break
    finally:
        task.cancel()
    assert follower.reloads == 1
    assert any(r.exc_info and "failed; trying again" in r.getMessage() for r in caplog.records)
