"""Kubernetes resource quantities (``50m``, ``64Mi``, ``1.5``, ``2e3``), parsed as the API server parses them.

Why: a GoQueue's ``spec.sidecar.resources`` ends up in the injected container; a value the API server
cannot parse there makes every pod of the identity fail to be created. Checking it when the GoQueue is
applied (webhook) and in the CRD's schema (``QUANTITY_PATTERN``, so it holds with the operator down)
refuses it up front. The grammar is apimachinery's ``resource.ParseQuantity``:
``[+-]<digits>[.<digits>]<suffix>`` with suffix one of ``Ki Mi Gi Ti Pi Ei``, ``n u m "" k M G T P E``
or ``e<int>``/``E<int>``. Negative quantities, which no container resource allows, are refused here.
"""

import re
from decimal import Decimal
from typing import Final

from goq.errors import ConfigError

QUANTITY_PATTERN: Final = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
"""Non-negative quantities exactly as ``parse_quantity`` accepts them; the CRD's schema uses it."""
_QUANTITY: Final = re.compile(QUANTITY_PATTERN)
_BINARY: Final = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL: Final = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_MAX_EXPONENT: Final = 1000
"""Larger exponents mean nothing for a container; Kubernetes clamps such values anyway."""
EXAMPLES: Final = "such as 50m, 0.5, 64Mi, 1Gi or 1e3"


def parse_quantity(value: object, path: str) -> Decimal:
    """The quantity's value (``50m`` -> 0.05, ``64Mi`` -> 67108864); ConfigError naming ``path`` otherwise."""
    match = _QUANTITY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(
            f"{path} must be a non-negative Kubernetes quantity, a number with an optional suffix "
            f"(Ki Mi Gi Ti Pi Ei, m k M G T P E, or e<exponent>) {EXAMPLES}, got {value!r}"
        )
    number, suffix = Decimal(match[1]), match[3] or ""
    if suffix in _BINARY:
        return number * (1 << _BINARY[suffix])
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    if abs(exponent) > _MAX_EXPONENT:
        raise ConfigError(f"{path}: the exponent of {value!r} is out of range (at most e{_MAX_EXPONENT})")
    return number.scaleb(exponent)
