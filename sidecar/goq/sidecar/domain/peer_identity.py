"""Who is on the other end of a peer connection: the GoQ identity its TLS certificate names.

A sidecar's certificate carries the URI SAN ``spiffe://<trust domain>/ns/<namespace>/goq/<identity>``
(issued by the operator, ``goq.operator.identity_certs``). The peer server notes the caller's identity
for the call it serves (``SENDER``, a context variable: each gRPC call runs in a task of its own), and the
inbound check refuses an envelope whose ``from`` is another identity (``identity-mismatch``). Over
plaintext there is no certificate and nothing to compare: only the HMAC signature vouches for ``from``.
"""

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from goq.identity import Address
from goq.spiffe import SCHEME, IdentityError, parse_spiffe_id

IDENTITY_MISMATCH: Final = "identity-mismatch"
"""The refusal (and poison reason) of an envelope whose ``from`` is not the identity of the sender's certificate."""


@dataclass(frozen=True)
class PeerIdentity:
    """The caller of one peer call over TLS: the identity its certificate names, or why it names none."""

    address: Address | None
    problem: str = ""


SENDER: ContextVar[PeerIdentity | None] = ContextVar("goq_peer_sender", default=None)
"""The caller of the peer call being served; ``None`` over plaintext (nothing to check)."""


def identity_of(auth_context: Mapping[str, Iterable[bytes]]) -> PeerIdentity | None:
    """The caller's identity from gRPC's ``context.auth_context()``; ``None`` when the call is not over TLS."""
    if b"ssl" not in list(auth_context.get("transport_security_type", ())):
        return None
    uris = [u.decode(errors="replace") for u in auth_context.get("peer_uri", ())]
    spiffe = [u for u in uris if u.startswith(SCHEME)]
    if len(spiffe) != 1:
        return PeerIdentity(None, f"the peer's certificate names {len(spiffe)} SPIFFE IDs, not one: {uris}")
    try:
        return PeerIdentity(parse_spiffe_id(spiffe[0]))
    except IdentityError as exc:
        return PeerIdentity(None, str(exc))


def identity_mismatch(source: Address) -> str | None:
    """Why an envelope ``from`` ``source`` may not come from the caller being served; ``None``: it may."""
    sender = SENDER.get()
    if sender is None or sender.address == source:
        return None
    if sender.address is None:
        return f"the envelope is from {source}, but {sender.problem}"
    return f"the envelope is from {source}, but the sender's certificate is {sender.address}'s"
