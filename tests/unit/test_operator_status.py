"""Status logic: conditions keep their transition time, stale and vanished pods, pods not injected."""

import datetime
from typing import Any

from goq import names
from goq.operator.conditions import Condition, merge_conditions
from goq.operator.reconciling import PodFacts, pod_facts, status_patch
from goq.queue_status import PodFigures, format_time

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
READY = Condition("Ready", True, "Reconciled", "fine")


def later(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = merge_conditions(None, [READY], T0, 1)
    again = merge_conditions(first, [Condition("Ready", True, "Reconciled", "still fine")], later(60), 2)
    assert again == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciled",
            "message": "still fine",
            "lastTransitionTime": format_time(T0),
            "observedGeneration": 2,
        }
    ]
    flipped = merge_conditions(again, [Condition("Ready", False, "RetryPolicyNotFound", "gone")], later(90), 2)
    assert flipped[0]["lastTransitionTime"] == format_time(later(90))
    assert flipped[0]["status"] == "False"


def test_other_conditions_are_kept() -> None:
    current = [{"type": "Custom", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "t"}]
    assert [c["type"] for c in merge_conditions(current, [READY], T0, None)] == ["Custom", "Ready"]


def pod(name: str, annotations: dict[str, str], deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "annotations": annotations}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def test_pods_annotated_for_the_identity_without_the_sidecar_are_found() -> None:
    facts = pod_facts(
        "orders",
        [
            pod("a", {names.ANNOTATION_ID: "orders", names.ANNOTATION_INJECTED: "0.1.0"}),
            pod("b", {names.ANNOTATION_ID: "orders"}),
            pod("c", {names.ANNOTATION_ID: "billing"}),
            pod("d", {names.ANNOTATION_ID: "orders"}, deleting=True),
            pod("e", {}),
        ],
    )
    assert facts == PodFacts(frozenset("abcde"), ("b",))


def goqueue(pods: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "orders", "namespace": "shop", "resourceVersion": "42", "generation": 3},
        "status": {"pods": pods, **status},
    }


def test_a_pod_whose_heartbeat_stopped_is_marked_stale_and_no_longer_counted_ready() -> None:
    pods = {
        "fresh": PodFigures(True, 1, 2, 3, 4).to_entry(later(25)),
        "silent": PodFigures(True, 10, 20, 30, 40).to_entry(T0),
    }
    patch, stale = status_patch(goqueue(pods), PodFacts(frozenset(pods), ()), READY, later(31), stale_after=30)
    assert stale == ["silent"]
    assert patch is not None
    assert patch["metadata"] == {"resourceVersion": "42"}
    assert patch["status"]["pods"] == {"silent": {"stale": True, "ready": False}}
    assert patch["status"]["ready"] == "1/2"
    assert patch["status"]["sendQueue"] == 11
    assert patch["status"]["observedGeneration"] == 3


def test_entries_of_pods_that_are_gone_are_removed() -> None:
    pods = {"gone": PodFigures(True).to_entry(later(30)), "here": PodFigures(True).to_entry(later(30))}
    patch, stale = status_patch(goqueue(pods), PodFacts(frozenset({"here"}), ()), READY, later(31), 30)
    assert stale == []
    assert patch is not None
    assert patch["status"]["pods"] == {"gone": None}
    assert patch["status"]["podCount"] == 1


def test_pods_not_injected_are_reported_in_status_and_condition() -> None:
    patch, _ = status_patch(goqueue({}), PodFacts(frozenset({"x"}), ("x",)), READY, T0, 30)
    assert patch is not None
    assert patch["status"]["notInjected"] == ["x"]
    [injected] = [c for c in patch["status"]["conditions"] if c["type"] == "Injected"]
    assert (injected["status"], injected["reason"]) == ("False", "NotInjected")
    assert "run without the GoQ sidecar: x" in injected["message"]


def test_nothing_is_written_when_the_status_is_already_true() -> None:
    patch, _ = status_patch(goqueue({}), PodFacts(frozenset(), ()), READY, T0, 30)
    assert patch is not None
    settled = goqueue({}, **{k: v for k, v in patch["status"].items() if k != "pods"})
    assert status_patch(settled, PodFacts(frozenset(), ()), READY, later(5), 30) == (None, [])
