"""On the real API server, with the operator as a process under its least-privilege RBAC: each namespace's key
ring holds only the keys of pairs of namespaces with itself on one side, derived from the master, never a
master key; it follows a rotation of the master; ``GOQ_KEY_SCOPE`` switches between that and the copy."""

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import pair_keys
from goq.keyring import SECRET_NAME

from .operator_kube import apply_crds, eventually, namespace, operator_namespace, operator_process

GROUP, VERSION = "goq.io", "v1alpha1"
MERGE = "application/merge-patch+json"


def decoded(secret: k8s.V1Secret | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in ((secret.data if secret else None) or {}).items()}


def pair_ring_problems(namespace: str, ring: dict[str, bytes], master: dict[str, bytes]) -> list[str]:
    """What is wrong with ``namespace``'s ring for ``master`` (empty: nothing). Every entry is ``active``,
    ``namespace`` or a pair key with ``namespace`` on one side, derived from the master key it names; no
    master key is among them; it holds its own pair ``namespace -> namespace`` for every master key."""
    masters = {k: v for k, v in master.items() if k != "active"}
    problems = []
    if ring.get("namespace") != namespace.encode():
        problems.append(f"entry 'namespace' is {ring.get('namespace')!r}")
    if ring.get("active") != master.get("active"):
        problems.append(f"active {ring.get('active')!r}, the master's {master.get('active')!r}")
    for name, value in ring.items():
        if name in ("active", "namespace"):
            continue
        pair = pair_keys.parse_entry(name)
        if pair is None or namespace not in pair[:2]:
            problems.append(f"{name!r} is not a pair with {namespace} on one side")
        elif pair[2] not in masters or value != pair_keys.derive(masters[pair[2]], pair[0], pair[1]):
            problems.append(f"{name!r} is not derived from the master key {pair[2]!r}")
        if value in masters.values():
            problems.append(f"{name!r} holds a master key")
    problems += [f"no own pair for {i}" for i in masters if pair_keys.entry(namespace, namespace, i) not in ring]
    return problems


async def read(core: k8s.CoreV1Api, namespace: str) -> dict[str, bytes]:
    try:
        return decoded(await core.read_namespaced_secret(SECRET_NAME, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise


@contextlib.asynccontextmanager
async def three_namespaces(api: k8s.ApiClient) -> AsyncIterator[list[str]]:
    async with namespace(api, "ka") as a, namespace(api, "kb") as b, namespace(api, "kc") as c:
        for ns in (a, b, c):
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": "orders"}, "spec": {}}
            await k8s.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", body)
        yield [a, b, c]


async def distributed(
    core: k8s.CoreV1Api, op_ns: str, spaces: list[str], keys: int = 1
) -> dict[str, dict[str, bytes]] | None:
    """The master and every namespace's ring, once the master holds ``keys`` keys, each namespace holds its
    pairs with every namespace for each of them, and ``active`` is the master's everywhere; else None."""
    master = await read(core, op_ns)
    rings = {ns: await read(core, ns) for ns in spaces}
    ids = [k for k in master if k != "active"]
    complete = len(ids) >= keys and all(
        pair_keys.entry(s, d, i) in rings[ns] for ns in spaces for s in spaces for d in (ns,) for i in ids
    )
    settled = all(r.get("active") == master.get("active") for r in rings.values())
    return {op_ns: master, **rings} if complete and settled else None


async def test_each_namespace_holds_only_its_pair_keys_and_they_follow_a_rotation_of_the_master(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    timing = {"GOQ_KEY_PROPAGATION": "1s", "GOQ_KEY_RETENTION": "1h"}
    async with (
        operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig),
        three_namespaces(kube_api) as spaces,
        operator_process(kube_api, op_ns, kubeconfig, tmp_path, extra_env=timing) as operator,
    ):
        found = await eventually(lambda: distributed(core, op_ns, spaces), within=30)
        assert found is not None, f"the pair keys never reached every namespace\n{operator.log()[-3000:]}"
        master = found[op_ns]
        active = master["active"].decode()
        for ns in spaces:
            assert pair_ring_problems(ns, found[ns], master) == [], ns
            for peer in spaces:  # it sends to and receives from every namespace with a GoQueue
                assert pair_keys.entry(ns, peer, active) in found[ns]
                assert pair_keys.entry(peer, ns, active) in found[ns]
            others = [o for o in spaces if o != ns]
            between_others = [k for k in found[ns] if (p := pair_keys.parse_entry(k)) and set(p[:2]) <= set(others)]
            assert between_others == [], f"{ns} holds keys between two other namespaces"
        a, _, c = spaces
        assert found[a][pair_keys.entry(a, c, active)] == found[c][pair_keys.entry(a, c, active)]

        # A rotation: the new key's pairs reach every namespace, and ``active`` moves there as in the master.
        await core.patch_namespaced_secret(
            SECRET_NAME, op_ns, {"metadata": {"annotations": {"goq.io/rotate-now": "now"}}}
        )

        async def rotated() -> dict[str, dict[str, bytes]] | None:
            now = await distributed(core, op_ns, spaces, keys=2)
            return now if now is not None and now[op_ns]["active"] != master["active"] else None

        after = await eventually(rotated, within=30)
        assert after is not None, f"the rotation did not reach every namespace\n{operator.log()[-3000:]}"
        ids = {k for k in after[op_ns] if k != "active"}
        for ns in spaces:
            assert pair_ring_problems(ns, after[ns], after[op_ns]) == [], ns
            held = {p[2] for k in after[ns] if (p := pair_keys.parse_entry(k))}
            assert held == ids
        log = operator.log()
        for value in [*after[op_ns].values(), *after[a].values()]:
            if len(value) == 32:
                assert base64.b64encode(value).decode() not in log
                assert value.hex() not in log


async def test_switching_the_key_scope_rewrites_every_namespace_ring(kube_api: k8s.ApiClient, tmp_path: Path) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    async with operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig), three_namespaces(kube_api) as spaces:
        async with operator_process(kube_api, op_ns, kubeconfig, tmp_path, "cluster.log", {"GOQ_KEY_SCOPE": "cluster"}):

            async def copied() -> bool:
                master = await read(core, op_ns)
                rings = [await read(core, ns) for ns in spaces]
                return bool(master) and all(ring == master for ring in rings)

            assert await eventually(copied), "with GOQ_KEY_SCOPE=cluster every namespace holds the master's copy"

        async with operator_process(kube_api, op_ns, kubeconfig, tmp_path, "namespace.log"):  # the default

            async def scoped() -> bool:
                master = await read(core, op_ns)
                rings = {ns: await read(core, ns) for ns in spaces}
                return all(pair_ring_problems(ns, ring, master) == [] for ns, ring in rings.items())

            assert await eventually(scoped), "switching to GOQ_KEY_SCOPE=namespace did not rewrite the rings"
