"""Poison sink ``http``: POST ``{"messages": [...]}`` (JSON) to a URL, retried; a 2xx answer means kept.

Options: ``url`` (required), ``timeout`` (seconds per attempt, default 5), ``retries`` (default 3).
"""

import asyncio

import aiohttp

from goq.sidecar.adapters.poison.records_json import to_json
from goq.sidecar.domain.records import PoisonRecord
from goq.sidecar.ports.poison import PoisonSinkError, SinkContext
from goq.sink_options import POISON, check_sink


class HttpPoisonSink:
    """Hands poisoned messages to an HTTP endpoint; only a 2xx answer counts as kept."""

    def __init__(self, context: SinkContext) -> None:
        options = context.options
        check_sink(POISON, "http", options)  # the rules the operator's webhook applies too
        self.url = str(options["url"])
        self.timeout = float(options.get("timeout", 5))
        self.retries = int(options.get("retries", 3))
        self._session: aiohttp.ClientSession | None = None

    async def put(self, records: list[PoisonRecord]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        body = {"messages": [to_json(r) for r in records]}
        problem = ""
        for attempt in range(self.retries + 1):
            try:
                async with self._session.post(self.url, json=body) as response:
                    if 200 <= response.status < 300:
                        return
                    problem = f"answered {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = str(exc) or type(exc).__name__
            if attempt < self.retries:
                await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
        raise PoisonSinkError(f"poison endpoint {self.url} {problem} ({self.retries + 1} attempts)")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def create(context: SinkContext) -> HttpPoisonSink:
    """Entry point ``http`` of ``goq.poison_sinks``."""
    return HttpPoisonSink(context)
