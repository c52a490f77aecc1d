"""The ``spec.sidecar`` of every GoQueue, kept in memory for the admission server.

The pod webhook must answer within its timeout without API calls of its own, so the operator keeps
each GoQueue's sidecar overrides here: on the leader, updated by the kopf handlers on every GoQueue change
and rebuilt by each sweep; on every replica, re-listed every sweep interval (``running._follow``), so a
follower injects what the leader would. A rebuild also forgets deleted GoQueues.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

SidecarSpecLookup = Callable[[str, str], Mapping[str, Any] | None]
"""(namespace, identity) -> that GoQueue's ``spec.sidecar``, or ``None``."""


def _key(goqueue: Mapping[str, Any]) -> tuple[str, str]:
    meta = goqueue["metadata"]
    return str(meta["namespace"]), str(meta["name"])


def _sidecar(goqueue: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = (goqueue.get("spec") or {}).get("sidecar")
    return value if isinstance(value, Mapping) and value else None


class SidecarSpecs:
    """GoQueue (namespace, name) -> ``spec.sidecar``; only GoQueues that set one are kept."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, str], Mapping[str, Any]] = {}

    def update(self, goqueue: Mapping[str, Any]) -> None:
        """Take one GoQueue's current spec."""
        if (sidecar := _sidecar(goqueue)) is not None:
            self._specs[_key(goqueue)] = sidecar
        else:
            self._specs.pop(_key(goqueue), None)

    def replace_all(self, goqueues: Iterable[Mapping[str, Any]]) -> None:
        """Take the complete list (GoQueues not in it are forgotten)."""
        self._specs = {_key(g): s for g in goqueues if (s := _sidecar(g)) is not None}

    def get(self, namespace: str, identity: str) -> Mapping[str, Any] | None:
        """The overrides for a pod of ``identity`` in ``namespace``."""
        return self._specs.get((namespace, identity))
