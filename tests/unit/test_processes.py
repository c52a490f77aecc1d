"""Local servers are started with their output in a file, waited for, and stopped by their own PID."""

import os
import sys
from pathlib import Path

import pytest

from goq.devenv import ports as port_choice
from goq.devenv import processes
from goq.devenv.errors import DevEnvError
from goq.devenv.ports import free_ports, is_listening


def test_stop_ends_the_process_it_started(tmp_path: Path) -> None:
    server = processes.start("sleeper", ["sleep", "60"], tmp_path / "sleep.log")
    assert server.alive()
    assert processes.pid_runs(server.pid, "sleep")
    server.stop(timeout=5)
    assert not server.alive()
    assert not processes.pid_alive(server.pid)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    server = processes.start("stubborn", [sys.executable, "-c", code], tmp_path / "stubborn.log")
    processes.wait_until("up", lambda: "up" in server.log_tail(), server, timeout=10)
    server.stop(timeout=0.5)
    assert not server.alive()


def test_waiting_on_a_server_that_exits_fails_at_once_with_its_log(tmp_path: Path) -> None:
    server = processes.start(
        "crasher",
        [sys.executable, "-c", "import sys; print('bad flag --nope'); sys.exit(3)"],
        tmp_path / "c.log",
    )
    with pytest.raises(DevEnvError, match=r"(?s)crasher exited \(code 3\) while waiting for ready.*bad flag --nope"):
        processes.wait_until("ready", lambda: False, server, timeout=30)


def test_waiting_gives_up_after_the_timeout(tmp_path: Path) -> None:
    server = processes.start("sleeper", ["sleep", "60"], tmp_path / "sleep.log")
    try:
        with pytest.raises(DevEnvError, match=r"sleeper \(pid \d+\) not ready after 0 s"):
            processes.wait_until("ready", lambda: False, server, timeout=0.2)
    finally:
        server.stop()


def test_a_recorded_pid_now_running_another_program_is_not_taken_for_the_server() -> None:
    assert processes.pid_runs(os.getpid(), os.path.basename(sys.executable)) or processes.pid_runs(
        os.getpid(), "python"
    )
    assert not processes.pid_runs(os.getpid(), "mongod")


def test_an_unknown_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DevEnvError, match="cannot start ghost"):
        processes.start("ghost", [str(tmp_path / "no-such-binary")], tmp_path / "g.log")


def test_free_ports_are_distinct_and_unused() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert not any(is_listening(p) for p in ports)


def test_free_ports_lie_below_the_range_the_kernel_gives_outgoing_connections() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(10_000 <= p < low for p in free_ports(20))


def test_a_process_never_hands_out_the_same_port_twice_even_before_anything_binds_it() -> None:
    ports = [port for _ in range(300) for port in free_ports(4)]
    assert len(set(ports)) == len(ports)


def test_a_port_drawn_twice_in_one_call_is_handed_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two sockets with SO_REUSEADDR may both bind one port while neither listens: the draw must not count it twice.
    a, b, c = free_ports(3)
    monkeypatch.setattr(port_choice, "_HANDED_OUT", set())  # as if drawn by nobody yet
    draws = iter([a, a, b, b, c])

    class Repeating:
        def randrange(self, low: int, high: int) -> int:
            return next(draws)

    monkeypatch.setattr(port_choice.random, "SystemRandom", Repeating)
    assert sorted(free_ports(3)) == sorted([a, b, c])
