"""``goq-operator``: the kopf operator with its admission webhook.

Wires the pure webhook functions (``goq.webhook``) into the operator's admission server
(``goq.operator``): the one place that may import both.
"""

import asyncio
import logging
import sys
from collections.abc import Mapping
from typing import Any

from goq.cli.common import parser
from goq.errors import GoQError
from goq.operator.admission import Mutator
from goq.operator.running import MutatorFactory, run
from goq.operator.settings import OperatorSettings
from goq.webhook import InjectionSettings, injection_patch, supports_native_sidecars, validate_custom_object


def injection_settings(settings: OperatorSettings, major: str, minor: str) -> InjectionSettings:
    """The webhook's settings for a server of this version."""
    native = settings.sidecar.native
    return InjectionSettings(
        image=settings.sidecar.image,
        requests=dict(settings.sidecar.requests),
        limits=dict(settings.sidecar.limits),
        native_sidecar=supports_native_sidecars(major, minor) if native == "auto" else native == "true",
        mongodb_secret=settings.sidecar.mongodb_secret,
    )


def mutator_for(settings: OperatorSettings) -> MutatorFactory:
    """The factory ``run`` calls once it knows the server's version."""

    def factory(major: str, minor: str) -> Mutator:
        injection = injection_settings(settings, major, minor)
        logging.getLogger("goq.operator").info(
            "injecting %s as a %s", injection.image, "native sidecar" if injection.native_sidecar else "container"
        )

        def mutate(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
            return injection_patch(pod, injection)

        return mutate

    return factory


def main(argv: list[str] | None = None) -> int:
    """Run the operator until it is signalled; settings come from ``GOQ_*`` variables (docs/operator.md)."""
    parser("goq-operator", "The GoQ operator and sidecar-injection webhook (settings: GOQ_* variables).").parse_args(
        argv
    )
    try:
        settings = OperatorSettings.from_env()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        asyncio.run(run(settings, mutator_for(settings), validate_custom_object))
    except GoQError as exc:
        print(f"goq-operator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
