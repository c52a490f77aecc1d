"""What the local commands print while they work: numbered steps, and progress while they wait."""

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

from goq.devenv.errors import DevEnvError

T = TypeVar("T")


class Progress:
    """Prints ``==> [n] step`` lines, indented details, and a ticking line (or a line every few seconds
    when the output is not a terminal) while something is awaited."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.count = 0
        self.tty = self.out.isatty()

    def step(self, text: str) -> None:
        self.count += 1
        print(f"\n==> [{self.count}] {text}", file=self.out, flush=True)

    def detail(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            print(f"    {line}", file=self.out, flush=True)

    async def wait(self, what: str, check: Callable[[], Awaitable[T]], within: float, interval: float = 0.5) -> T:
        """Await ``check()`` until it returns something truthy, showing the time spent; fail after ``within`` s."""
        started = time.monotonic()
        last_line = started
        while True:
            result = await check()
            spent = time.monotonic() - started
            if result:
                self._ticker(f"{what}: done in {spent:.1f} s", final=True)
                return result
            if spent > within:
                self._ticker(f"{what}: gave up after {spent:.0f} s", final=True)
                raise DevEnvError(f"{what}: not done after {within:.0f} s")
            if self.tty:
                self._ticker(f"{what} ... {spent:.0f} s")
            elif time.monotonic() - last_line >= 5:
                last_line = time.monotonic()
                self.detail(f"{what} ... {spent:.0f} s")
            await asyncio.sleep(interval)

    def _ticker(self, text: str, final: bool = False) -> None:
        if self.tty:
            print(f"\r    {text}\033[K", end="\n" if final else "", file=self.out, flush=True)
        elif final:
            self.detail(text)
