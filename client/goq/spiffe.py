"""SPIFFE IDs of GoQ identities: ``spiffe://<trust domain>/ns/<namespace>/goq/<identity>``.

The operator writes one into each identity's certificate (``goq.operator.identity_certs``); a receiving
sidecar reads it back to learn who sent a delivery (``goq.sidecar.domain.peer_identity``).
"""

from typing import Final

from goq.errors import ConfigError
from goq.identity import Address

SCHEME: Final = "spiffe://"


class IdentityError(ConfigError):
    """A URI that is not a GoQ identity's SPIFFE ID."""


def spiffe_id(trust_domain: str, address: Address) -> str:
    """``spiffe://<trust domain>/ns/<namespace>/goq/<identity>`` of a namespaced address."""
    if not address.namespace:
        raise IdentityError(f"{address} has no namespace: a SPIFFE ID names the identity's namespace")
    return f"{SCHEME}{trust_domain}/ns/{address.namespace}/goq/{address.identity}"


def parse_spiffe_id(uri: str) -> Address:
    """The identity a SPIFFE ID names; raises ``IdentityError`` saying what form is expected."""
    expected = f"expected {SCHEME}<trust domain>/ns/<namespace>/goq/<identity>, got {uri!r}"
    if not uri.startswith(SCHEME):
        raise IdentityError(expected)
    parts = uri[len(SCHEME) :].split("/")
    if len(parts) != 5 or not parts[0] or parts[1] != "ns" or parts[3] != "goq" or not parts[2] or not parts[4]:
        raise IdentityError(expected)
    try:
        return Address.parse(f"{parts[4]}.{parts[2]}")
    except ConfigError as exc:
        raise IdentityError(f"{uri!r} does not name a GoQ identity: {exc}") from None
