"""``goq-operator``: the kopf operator with its admission webhook.

Wires the pure webhook functions (``goq.webhook``) into the operator's admission server
(``goq.operator``): the one place that may import both.
"""

import asyncio
import functools
import logging
import sys
from collections.abc import Mapping
from typing import Any

from goq.cli.common import parser
from goq.errors import ConfigError, GoQError
from goq.operator.admission import Mutator, Validator
from goq.operator.running import MutatorFactory, run
from goq.operator.settings import OperatorSettings
from goq.operator.sidecar_specs import SidecarSpecLookup
from goq.webhook import (
    InjectionSettings,
    SidecarOverrides,
    identity_of,
    injection_patch,
    supports_native_sidecars,
    validate_custom_object,
)
from goq.webhook.injection_label import check_injection_label, validate_namespace

log = logging.getLogger("goq.operator")


def injection_settings(settings: OperatorSettings, major: str, minor: str) -> InjectionSettings:
    """The webhook's settings for a server of this version."""
    native = settings.sidecar.native
    return InjectionSettings(
        image=settings.sidecar.image,
        requests=dict(settings.sidecar.requests),
        limits=dict(settings.sidecar.limits),
        native_sidecar=supports_native_sidecars(major, minor) if native == "auto" else native == "true",
        mongodb_secret=settings.sidecar.mongodb_secret,
        dedupe_window=settings.dedupe_window,
        peer_tls=settings.tls.enabled,
        extra_env=settings.sidecar.env,
    )


def for_goqueue(injection: InjectionSettings, pod: Mapping[str, Any], specs: SidecarSpecLookup) -> InjectionSettings:
    """The settings with the pod's GoQueue's ``spec.sidecar`` applied (the defaults if it has none)."""
    identity, namespace = identity_of(pod), (pod.get("metadata") or {}).get("namespace")
    sidecar = specs(str(namespace), identity) if identity and namespace else None
    if sidecar is None:
        return injection
    try:
        return SidecarOverrides.from_spec(sidecar).apply_to(injection)
    except ConfigError as exc:  # refused at admission; only an object from before the webhook existed gets here
        log.warning("ignoring GoQueue %s/%s spec.sidecar: %s", namespace, identity, exc)
        return injection


def mutator_for(settings: OperatorSettings) -> MutatorFactory:
    """The factory ``run`` calls once it knows the server's version."""

    def factory(major: str, minor: str, sidecar_specs: SidecarSpecLookup) -> Mutator:
        injection = injection_settings(settings, major, minor)
        log.info("injecting %s as a %s", injection.image, "native sidecar" if injection.native_sidecar else "container")

        def mutate(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
            meta = pod.get("metadata") or {}
            name = meta.get("name") or f"{meta.get('generateName') or ''}*"
            check_injection_label(pod, f"pod {meta.get('namespace')}/{name}")
            return injection_patch(pod, for_goqueue(injection, pod, sidecar_specs))

        return mutate

    return factory


def validator_for(settings: OperatorSettings) -> Validator:
    """Custom-resource validation, RetryPolicies held to the window the operator gives every sidecar, and
    a GoQueue's ``spec.sidecar`` checked against the container the operator would inject."""
    sidecar = injection_settings(settings, "1", "0")  # the server's version matters only for the pod patch
    return functools.partial(validate_custom_object, dedupe_window=settings.dedupe_window, sidecar=sidecar)


def main(argv: list[str] | None = None) -> int:
    """Run the operator until it is signalled; settings come from ``GOQ_*`` variables (docs/operator.md).

    Exits 1 with a message on a bad setting, and when this replica led and lost the leader Lease (the
    kubelet restarts it as a follower: see docs/operator.md#high-availability)."""
    parser("goq-operator", "The GoQ operator and sidecar-injection webhook (settings: GOQ_* variables).").parse_args(
        argv
    )
    try:
        settings = OperatorSettings.from_env()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one INFO line per handled pod is noise
        asyncio.run(
            run(settings, mutator_for(settings), validator_for(settings), namespace_validator=validate_namespace)
        )
    except GoQError as exc:
        print(f"goq-operator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
