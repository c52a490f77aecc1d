"""Strict injection on a real kube-apiserver: ``goq.io/injection=required`` means no pod without its sidecar.

With the operator answering, pods of a required namespace (or labelled required themselves) are injected as
any other; with no replica answering, the API server refuses them (``failurePolicy: Fail``) where an unlabelled
namespace's pod is created without its sidecar (``Ignore``). A mistyped value is refused where it is set.
"""

import json
import uuid
from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from .operator_kube import apply_crds, namespace, running_operator, simple_pod

ASKS_FOR_GOQ = {"goq.io/id": "orders"}


def has_sidecar(pod: k8s.V1Pod) -> bool:
    return "goq-sidecar" in [c.name for c in pod.spec.containers]


def pod_name() -> str:
    return f"p-{uuid.uuid4().hex[:6]}"


def message_of(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


async def test_required_pods_are_refused_while_no_replica_answers_and_injected_while_one_does(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    required = {"goq.io/injection": "required"}
    async with (
        namespace(kube_api, "strict", required) as strict,
        namespace(kube_api, "lenient") as lenient,
        running_operator(kube_api, tmp_path) as operator,
    ):
        # Answered: both ways of asking for strictness are injected as any other pod.
        first = await core.create_namespaced_pod(strict, simple_pod(pod_name(), ASKS_FOR_GOQ))
        assert has_sidecar(first), operator.log()
        assert has_sidecar(await core.create_namespaced_pod(lenient, simple_pod(pod_name(), ASKS_FOR_GOQ, required)))

        operator.server.kill()  # no replica answers now; the webhook configurations stay registered

        for ns, pod in (
            (strict, simple_pod(pod_name(), ASKS_FOR_GOQ)),
            (lenient, simple_pod(pod_name(), ASKS_FOR_GOQ, required)),
        ):
            with pytest.raises(ApiException) as refused:
                await core.create_namespaced_pod(ns, pod)
            assert "failed calling webhook" in message_of(refused.value), message_of(refused.value)
            assert "inject-required" in message_of(refused.value)
        assert [p.metadata.name for p in (await core.list_namespaced_pod(strict)).items] == [first.metadata.name]

        # The default stays lenient: a pod elsewhere is created (and reported uninjected), and an opted-out pod
        # of a required namespace is never sent at all.
        assert not has_sidecar(await core.create_namespaced_pod(lenient, simple_pod(pod_name(), ASKS_FOR_GOQ)))
        opted_out = simple_pod(pod_name(), ASKS_FOR_GOQ, {"goq.io/injection": "disabled"})
        assert not has_sidecar(await core.create_namespaced_pod(strict, opted_out))


async def test_a_mistyped_injection_label_is_refused_on_a_namespace_and_on_a_pod(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    async with namespace(kube_api, "typo") as ns, running_operator(kube_api, tmp_path) as operator:
        with pytest.raises(ApiException) as created:
            await core.create_namespace(
                k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=pod_name(), labels={"goq.io/injection": "Required"}))
            )
        message = message_of(created.value)
        assert "validate-namespace.goq.io" in message, operator.log()
        assert "label goq.io/injection='Required' is not a value GoQ knows" in message

        with pytest.raises(ApiException) as relabelled:
            await core.patch_namespace(ns, {"metadata": {"labels": {"goq.io/injection": "enabled"}}})
        assert f"namespace {ns!r}: label goq.io/injection='enabled'" in message_of(relabelled.value)
        await core.patch_namespace(ns, {"metadata": {"labels": {"goq.io/injection": "required"}}})  # a known value

        with pytest.raises(ApiException) as pod:
            await core.create_namespaced_pod(ns, simple_pod("typo", ASKS_FOR_GOQ, {"goq.io/injection": "strict"}))
        assert f"pod {ns}/typo: label goq.io/injection='strict'" in message_of(pod.value)
