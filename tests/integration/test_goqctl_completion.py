"""goqctl's shell completion of names, driven through the real bash completion script as the shell drives it.

Names come from the real kube-apiserver (namespaces, GoQueues, pods, the kubeconfig's contexts) and from a real
sidecar's poison queue (ids and peers); every failure offers nothing, quickly and without a word on stderr.
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from goq.cli.goqctl.completing import COMPLETION_TIMEOUT
from goq.devenv.sidecars import SidecarProcess

from .operator_kube import apply_crds, namespace, simple_pod

GROUP, VERSION = "goq.io", "v1alpha1"
BIN = Path(sys.executable).parent
Sidecars = Callable[..., dict[str, SidecarProcess]]


def complete(words: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Tab after ``words`` (the last word is being completed; ``''`` for an empty one), as bash does it."""
    index = len(words.split()) - 1
    script = (
        f"source <(goqctl completion bash); COMP_WORDS=({words}); COMP_CWORD={index}; "
        '_goqctl_completion goqctl; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    full_env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")} | {"PATH": path}
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=full_env | (env or {}), timeout=60, check=True
    )


def offered(words: str, env: dict[str, str] | None = None) -> list[str]:
    done = complete(words, env)
    assert done.stderr == "", done.stderr
    return done.stdout.split()


@pytest.fixture
async def shop(kube_api: k8s.ApiClient) -> AsyncIterator[str]:
    """A namespace with the GoQueues orders and billing, two pods of orders and one of billing."""
    await apply_crds(kube_api)
    async with namespace(kube_api, "comp") as name:
        objects, core = k8s.CustomObjectsApi(kube_api), k8s.CoreV1Api(kube_api)
        for identity in ("orders", "billing"):
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": identity}}
            await objects.create_namespaced_custom_object(GROUP, VERSION, name, "goqueues", body | {"spec": {}})
        for pod, identity in (("orders-a", "orders"), ("orders-b", "orders"), ("billing-a", "billing")):
            await core.create_namespaced_pod(name, simple_pod(pod, labels={"goq.io/id": identity}))
        await core.create_namespaced_pod(name, simple_pod("unrelated"))
        yield name


def test_namespaces_identities_and_pods_are_completed_from_the_cluster(shop: str, kubeconfig: Path) -> None:
    env = {"KUBECONFIG": str(kubeconfig)}
    namespaces = offered("goqctl -n ''", env)
    assert {shop, "default", "kube-system"} <= set(namespaces), namespaces
    assert offered(f"goqctl --namespace {shop[:-2]}", env) == [shop]
    assert offered(f"goqctl -n {shop} --identity ''", env) == ["billing", "orders"]
    assert offered(f"goqctl -n {shop} stats --identity o", env) == ["orders"]  # the flag after the command too
    assert offered(f"goqctl -n {shop} --identity orders --pod ''", env) == ["orders-a", "orders-b"]
    assert offered(f"goqctl -n {shop} --pod ''", env) == ["billing-a", "orders-a", "orders-b"]
    assert offered(f"goqctl status -n {shop} ''", env) == ["billing", "orders"]
    assert offered("goqctl --identity ''", env) == [], "the default namespace has no GoQueue"


def test_the_kubeconfig_and_context_given_on_the_line_choose_the_cluster(
    shop: str, kubeconfig: Path, tmp_path: Path
) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    context = config["contexts"][0]
    config["contexts"].append({"name": "shop", "context": context["context"] | {"namespace": shop}})
    mine = tmp_path / "kubeconfig"
    mine.write_text(yaml.safe_dump(config))
    unset = {"KUBECONFIG": str(tmp_path / "missing")}  # only the flag can lead to the cluster
    assert offered(f"goqctl --kubeconfig {mine} --context ''", unset) == sorted([context["name"], "shop"])
    assert offered(f"goqctl --kubeconfig {mine} --context shop --identity ''", unset) == ["billing", "orders"]
    destinations = offered(f"goqctl --kubeconfig {mine} --context shop send b", unset)
    assert {"billing", f"billing.{shop}"} <= set(destinations), destinations  # other tests' namespaces may add more
    assert all(d.startswith("b") for d in destinations), destinations


def test_completion_offers_nothing_without_a_word_on_stderr_when_the_cluster_cannot_answer(
    kubeconfig: Path, tmp_path: Path
) -> None:
    assert offered("goqctl -n ''", {"KUBECONFIG": str(tmp_path / "missing")}) == []
    config = yaml.safe_load(kubeconfig.read_text())
    with socket.socket() as silent:  # accepts connections and never answers: a hung API server
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{silent.getsockname()[1]}"
        hung = tmp_path / "hung"
        hung.write_text(yaml.safe_dump(config))
        started = time.monotonic()
        assert offered("goqctl -n ''", {"KUBECONFIG": str(hung)}) == []
        took = time.monotonic() - started
    assert took < COMPLETION_TIMEOUT + 5, f"a hung API server held the prompt for {took:.1f} s"
    refused = tmp_path / "refused"
    refused.write_text(yaml.safe_dump(config))  # the port is closed now
    assert offered("goqctl --identity ''", {"KUBECONFIG": str(refused)}) == []


def test_poisoned_ids_and_peers_are_completed_from_the_sidecar(sidecars: Sidecars) -> None:
    policy = '{"maxAttempts": 2, "initialBackoff": "50ms", "maxBackoff": "50ms"}'
    group = sidecars("orders", "billing", start=False, GOQ_RETRY_POLICY=policy)
    group["orders"].start()  # billing and shipping are down: both messages are poisoned
    target = group["orders"].grpc_target
    goqctl = str(BIN / "goqctl")
    sent = [
        json.loads(
            subprocess.run(
                [goqctl, "--sidecar", target, "-o", "json", "send", to, "x"],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout
        )["id"]
        for to in ("billing", "shipping")
    ]

    deadline = time.monotonic() + 30
    while len(ids := offered(f"goqctl --sidecar {target} poison show ''")) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert ids == sorted(sent)
    assert offered(f"goqctl poison redrive --sidecar {target} {sent[0]} ''") == [sent[1]]
    peers = offered(f"goqctl poison list --sidecar {target} --peer ''")
    assert {"billing", "shipping"} <= set(peers), peers
    assert offered("goqctl poison list --peer s", {"GOQ_SIDECAR": target}) == [p for p in peers if p.startswith("s")]
    assert offered("goqctl poison show ''", {"GOQ_SIDECAR": "127.0.0.1:1"}) == []  # no sidecar there
