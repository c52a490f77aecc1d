"""HMAC keys per ordered pair of namespaces, derived from the master ring, so that a leak stays in its namespace.

Why: with one ring copied into every namespace, whoever reads the Secret of any namespace can sign a message
from any identity to any identity. Here the operator keeps the master ring (``goq.keyring``: rotation,
``active``, retirement unchanged) in its own namespace only, and gives each namespace ``N`` the keys of the
pairs with ``N`` on one side: ``N -> d`` to sign what it sends to ``d``, ``s -> N`` to verify what ``s`` sends
to it. A holder of ``N``'s Secret signs only messages from ``N`` or to ``N``: never one between two other
namespaces, which verify with a key it does not have.

Derivation: ``K(src -> dst, id) = HKDF-Expand-SHA256(master[id], "goq/v1/<src>/<dst>", 32)`` (RFC 5869; the
extract step is skipped because a master key is already 32 uniformly random bytes), one HMAC with the
standard library. A pair key reveals nothing about the master or any other pair's key.

Secret layout in scope ``namespace`` (what ``goq.signing.Keyring.from_directory`` reads):
    ``<src>.<dst>.<id>``  the pair key ``src -> dst`` of master key ``id`` (namespaces have no dots)
    ``active``            the master id that signs (as in the master)
    ``namespace``         the namespace the ring belongs to; its presence marks the layout
On the wire a pair-signed envelope names its key ``<id>@<src>``: the receiver looks up ``src -> itself``
before it decodes anything, then refuses the message unless its ``from`` is in ``src``.

Pure: no I/O.
"""

import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Final, Literal

from goq.errors import ConfigError

INFO_PREFIX: Final = "goq/v1/"
NAMESPACE_ENTRY: Final = "namespace"
"""The Secret entry naming the ring's namespace; a ring without it is a cluster-wide one."""
ACTIVE_ENTRY: Final = "active"
WIRE_SEPARATOR: Final = "@"
KeyScope = Literal["namespace", "cluster"]
SCOPES: Final[tuple[KeyScope, ...]] = ("namespace", "cluster")
_NAMESPACE: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def parse_scope(text: str) -> KeyScope:
    """``GOQ_KEY_SCOPE``: ``namespace`` (the default) or ``cluster`` (one ring everywhere, as before)."""
    value = text.strip().lower() or "namespace"
    if value == "namespace":
        return "namespace"
    if value == "cluster":
        return "cluster"
    raise ConfigError(
        f"GOQ_KEY_SCOPE is {text!r}; it must be 'namespace' (HMAC keys per pair of namespaces, the default) "
        "or 'cluster' (one key ring copied into every namespace, for an upgrade from an older GoQ)"
    )


def derive(master: bytes, source: str, destination: str) -> bytes:
    """The key for messages from namespace ``source`` to namespace ``destination`` under ``master``."""
    info = f"{INFO_PREFIX}{source}/{destination}".encode()
    return hmac.digest(master, info + b"\x01", "sha256")


def entry(source: str, destination: str, key_id: str) -> str:
    """The Secret entry (a file in the mounted volume) of a pair key."""
    return f"{source}.{destination}.{key_id}"


def parse_entry(name: str) -> tuple[str, str, str] | None:
    """``(source, destination, key id)`` of a pair key's entry; None for another entry."""
    parts = name.split(".", 2)
    if len(parts) != 3 or not all(parts) or not all(_NAMESPACE.fullmatch(p) for p in parts[:2]):
        return None
    return parts[0], parts[1], parts[2]


def wire_id(key_id: str, source: str) -> str:
    """What an envelope signed with ``source -> *`` under ``key_id`` names as its key."""
    return f"{key_id}{WIRE_SEPARATOR}{source}"


def parse_wire_id(text: str) -> tuple[str, str] | None:
    """``(key id, source namespace)`` of a pair-signed envelope's key; None for a cluster-wide key id."""
    key_id, separator, source = text.rpartition(WIRE_SEPARATOR)
    if not separator or not key_id or not _NAMESPACE.fullmatch(source):
        return None
    return key_id, source


def namespace_ring(masters: Mapping[str, bytes], active: str, namespace: str, peers: Iterable[str]) -> dict[str, bytes]:
    """The Secret data (raw bytes) of ``namespace``: for every master key, the pairs ``namespace -> p`` and
    ``p -> namespace`` for each namespace ``p`` of ``peers`` (``namespace`` itself always among them)."""
    data: dict[str, bytes] = {ACTIVE_ENTRY: active.encode(), NAMESPACE_ENTRY: namespace.encode()}
    everyone = sorted({namespace, *peers})
    for key_id, master in masters.items():
        for peer in everyone:
            data[entry(namespace, peer, key_id)] = derive(master, namespace, peer)
            data[entry(peer, namespace, key_id)] = derive(master, peer, namespace)
    return data
