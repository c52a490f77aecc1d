"""Status logic: conditions keep their transition time; the summary of the pods, gone pods' counters kept once."""

import datetime
import json
from typing import Any

from goq import names
from goq.operator.conditions import Condition, merge_conditions
from goq.operator.reconciling import PodFacts, StatusPlan, pod_facts, status_patch
from goq.queue_status import Heartbeat, PodFigures, format_time

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


def test_pods_annotated_for_the_identity_are_sorted_into_injected_and_not() -> None:
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
    assert (facts.existing, facts.not_injected) == (frozenset("abcde"), ("b",))
    assert [p["metadata"]["name"] for p in facts.injected] == ["a"]


INJECTED = {names.ANNOTATION_ID: "orders", names.ANNOTATION_INJECTED: "0.1.0"}


def running_pod(name: str) -> dict[str, Any]:
    """A pod whose sidecar the kubelet runs, created at T0."""
    container = {"name": names.SIDECAR_CONTAINER, "state": {"running": {"startedAt": format_time(T0)}}}
    body = pod(name, INJECTED)
    body["metadata"]["creationTimestamp"] = format_time(T0)
    return {**body, "status": {"phase": "Running", "containerStatuses": [container]}}


def beat(name: str, figures: PodFigures, at: datetime.datetime, uid: str | None = None) -> Heartbeat:
    return Heartbeat(name, figures, at, f"goq-orders-{name}", uid or f"uid-{name}")


def goqueue(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "orders", "namespace": "shop", "resourceVersion": "42", "generation": 3, "uid": "g"},
        "status": status,
    }


def facts_of(*pods: dict[str, Any]) -> PodFacts:
    return pod_facts("orders", list(pods))


def cond(patch: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in patch["status"]["conditions"] if c["type"] == kind)


def test_ready_counts_only_pods_with_a_fresh_ready_heartbeat_and_names_the_silent_one() -> None:
    beats = [
        beat("fresh", PodFigures(True, 1, 2, 3, 4), later(25)),
        beat("silent", PodFigures(True, 10, 20, 30, 40), T0),
    ]
    plan = status_patch(goqueue(), facts_of(running_pod("fresh"), running_pod("silent")), READY, later(31), 30, beats)
    assert plan.patch is not None
    status = plan.patch["status"]
    assert plan.patch["metadata"] == {"resourceVersion": "42"}
    assert (status["ready"], status["readyPods"], status["podCount"]) == ("1/2", 1, 2)
    assert (status["sendQueue"], status["delivered"], status["poisoned"]) == (11, 33, 44)
    assert status["worstPods"] == [
        {"pod": "silent", "reason": "PodStale", "message": "pod silent: no heartbeat for over 30 s"}
    ]
    assert (cond(plan.patch, "Ready")["status"], cond(plan.patch, "Ready")["reason"]) == ("False", "PodsUnhealthy")
    assert cond(plan.patch, "PodsHealthy")["reason"] == "PodStale"
    assert "1 of 2 pods unhealthy: pod silent: no heartbeat" in cond(plan.patch, "PodsHealthy")["message"]
    assert [p.pod for p in plan.announce] == ["silent"]
    assert status["observedGeneration"] == 3


def test_a_problem_already_named_in_the_status_is_not_announced_again() -> None:
    beats = [beat("silent", PodFigures(True), T0)]
    first = status_patch(goqueue(), facts_of(running_pod("silent")), READY, later(31), 30, beats)
    assert first.patch is not None
    again = status_patch(goqueue(**first.patch["status"]), facts_of(running_pod("silent")), READY, later(32), 30, beats)
    assert again.announce == ()


def test_the_counters_of_a_gone_pod_are_kept_once_even_if_its_lease_outlives_the_write() -> None:
    here = beat("here", PodFigures(True, delivered=5, poisoned=1), later(30))
    gone = beat("gone", PodFigures(True, delivered=100, poisoned=7), later(30))
    plan = status_patch(goqueue(), facts_of(running_pod("here")), READY, later(31), 30, [here, gone])
    assert plan.patch is not None
    assert plan.fold == (gone,)
    status = plan.patch["status"]
    assert (status["delivered"], status["poisoned"], status["podCount"]) == (105, 8, 1)
    assert status["retired"] == {"delivered": 100, "poisoned": 7, "pods": 1, "folded": ["uid-gone"]}
    # The operator stopped before deleting the Lease: the next run deletes it without counting it again.
    again = status_patch(goqueue(**status), facts_of(running_pod("here")), READY, later(32), 30, [here, gone])
    assert again.fold == (gone,)
    assert again.patch is None
    # Once the Lease is gone, its uid leaves the record; the figures stay.
    after = status_patch(goqueue(**status), facts_of(running_pod("here")), READY, later(33), 30, [here])
    assert after.patch is not None
    assert after.patch["status"]["retired"] == {"delivered": 100, "poisoned": 7, "pods": 1, "folded": []}
    assert after.patch["status"]["delivered"] == 105


def test_the_old_per_pod_map_is_removed() -> None:
    plan = status_patch(goqueue(pods={"a": {"ready": True}}), facts_of(), READY, T0, 30)
    assert plan.patch is not None
    assert plan.patch["status"]["pods"] is None


def test_the_status_stays_small_with_many_unhealthy_pods() -> None:
    pods = [running_pod(f"orders-{i:03}") for i in range(300)]
    plan = status_patch(goqueue(), facts_of(*pods), READY, later(60), 30)
    assert plan.patch is not None
    status = plan.patch["status"]
    assert status["unhealthyPods"] == 300
    assert [w["pod"] for w in status["worstPods"]] == [f"orders-{i:03}" for i in range(5)]
    assert cond(plan.patch, "PodsHealthy")["message"].endswith("; and 295 more")
    assert len(json.dumps(status)) < 8192


def test_pods_not_injected_are_reported_in_status_and_condition() -> None:
    plan = status_patch(goqueue(), facts_of(pod("x", {names.ANNOTATION_ID: "orders"})), READY, T0, 30)
    assert plan.patch is not None
    assert plan.patch["status"]["notInjected"] == ["x"]
    injected = cond(plan.patch, "Injected")
    assert (injected["status"], injected["reason"]) == ("False", "NotInjected")
    assert "run without the GoQ sidecar: x" in injected["message"]


def test_nothing_is_written_when_the_status_is_already_true() -> None:
    beats = [beat("a", PodFigures(True, delivered=2), T0)]
    plan = status_patch(goqueue(), facts_of(running_pod("a")), READY, later(1), 30, beats)
    assert plan.patch is not None
    assert cond(plan.patch, "Ready")["reason"] == "Reconciled"
    assert cond(plan.patch, "PodsHealthy")["status"] == "True"
    settled = goqueue(**plan.patch["status"])
    assert status_patch(settled, facts_of(running_pod("a")), READY, later(5), 30, beats) == StatusPlan(None, (), ())


def test_an_identity_without_its_certificate_is_not_ready_and_says_why() -> None:
    missing = Condition("Certificate", False, "CertificateNotIssued", "the operator may not write Secret shop/goq-x")
    plan = status_patch(goqueue(), facts_of(), READY, T0, 30, certificate=missing)
    assert plan.patch is not None
    assert cond(plan.patch, "Certificate")["status"] == "False"
    ready = cond(plan.patch, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CertificateNotIssued")
    assert "goq-x" in ready["message"]
    issued = Condition("Certificate", True, "CertificateIssued", "in place")
    plan = status_patch(goqueue(), facts_of(), READY, T0, 30, certificate=issued)
    assert plan.patch is not None
    assert cond(plan.patch, "Ready")["status"] == "True"
