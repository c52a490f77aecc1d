"""A GoQueue's own sidecar image and resources: validated, and applied over the operator's settings."""

from collections.abc import Mapping
from typing import Any

import pytest

from goq.cli.operator import for_goqueue
from goq.errors import ConfigError
from goq.operator.sidecar_specs import SidecarSpecs
from goq.webhook import InjectionSettings, SidecarOverrides, validate_custom_object

BASE = InjectionSettings(image="base/sidecar:1", requests={"cpu": "50m"}, limits={"memory": "256Mi"})


def test_what_the_goqueue_sets_wins_and_the_rest_stays() -> None:
    overrides = SidecarOverrides.from_spec({"image": "mine/sidecar:2", "resources": {"limits": {"memory": "1Gi"}}})
    applied = overrides.apply_to(BASE)
    assert (applied.image, applied.requests, applied.limits) == ("mine/sidecar:2", {"cpu": "50m"}, {"memory": "1Gi"})
    assert SidecarOverrides.from_spec(None).apply_to(BASE) is BASE


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ({"imag": "x"}, r"spec.sidecar has unknown field\(s\) imag"),
        ({"image": ""}, r"spec.sidecar.image must be a non-empty string"),
        ({"resources": {"requests": {"cpu": 1}}}, r"spec.sidecar.resources.requests must map resource names"),
        ({"resources": {"limit": {}}}, r"spec.sidecar.resources has unknown field\(s\) limit"),
    ],
)
def test_bad_overrides_are_refused_with_their_path(sidecar: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SidecarOverrides.from_spec(sidecar)


def test_a_goqueue_with_sidecar_overrides_validates_both_parts() -> None:
    goqueue = {"kind": "GoQueue", "metadata": {"name": "orders"}, "spec": {"overflow": "reject"}}
    validate_custom_object({**goqueue, "spec": {"overflow": "reject", "sidecar": {"image": "mine:1"}}})
    with pytest.raises(ConfigError, match=r"GoQueue 'orders' is invalid: spec.sidecar has unknown field"):
        validate_custom_object({**goqueue, "spec": {"sidecar": {"img": "mine:1"}}})


def goqueue(ns: str, name: str, sidecar: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = {"sidecar": sidecar} if sidecar is not None else {}
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def test_the_operator_remembers_overrides_per_goqueue_and_forgets_deleted_ones() -> None:
    specs = SidecarSpecs()
    specs.update(goqueue("shop", "orders", {"image": "a:1"}))
    specs.update(goqueue("shop", "billing", None))
    assert specs.get("shop", "orders") == {"image": "a:1"}
    assert specs.get("shop", "billing") is None
    specs.update(goqueue("shop", "orders", None))
    assert specs.get("shop", "orders") is None
    specs.replace_all([goqueue("shop", "billing", {"image": "b:1"})])
    assert specs.get("shop", "billing") == {"image": "b:1"}


def test_a_pod_gets_the_settings_of_its_own_goqueue() -> None:
    specs = SidecarSpecs()
    specs.update(goqueue("shop", "orders", {"image": "orders/sidecar:3"}))
    pod = {"metadata": {"namespace": "shop", "annotations": {"goq.io/id": "orders"}}}
    other = {"metadata": {"namespace": "shop", "annotations": {"goq.io/id": "billing"}}}
    assert for_goqueue(BASE, pod, specs.get).image == "orders/sidecar:3"
    assert for_goqueue(BASE, other, specs.get) is BASE
