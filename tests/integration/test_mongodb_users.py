"""A MongoDB user and database per namespace: a real mongod with access control (a one-member replica set with a
key file), the real kube-apiserver and operator (with its least-privilege RBAC and an admin user that has only
the user-management actions of docs/operator.md), and real sidecar processes using a namespace's URI."""

import base64
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import OperationFailure

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.mongo import MongoAuth, MongoServer
from goq.devenv.sidecars import SidecarProcess
from goq.mongodb_uri import credentials_in, namespace_database, uri_database, with_user

from .conftest import App
from .operator_kube import OperatorProcess, apply_crds, apply_rbac, eventually, namespace, operator_namespace
from .operator_kube import operator_process as start_operator
from .test_large_messages import receive_large, send_large

GROUP, VERSION = "goq.io", "v1alpha1"
SECRET, ADMIN_SECRET = "goq-mongodb", "goq-mongodb-admin"
ADMIN_ACTIONS = ["createUser", "changePassword", "grantRole", "revokeRole", "viewUser"]
UNAUTHORIZED, AUTHENTICATION_FAILED = 13, 18
Doc = dict[str, Any]
Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


@pytest.fixture(scope="module")
def auth_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """mongod with access control; the operator's admin user holds only the role goqUserAdmin of the docs."""
    server = MongoServer(tmp_path_factory.mktemp("auth-mongo"), auth=MongoAuth())
    server.start()
    try:
        with MongoClient(server.uri) as root:
            any_database = {"db": "", "collection": ""}
            root.admin.command(
                "createRole",
                "goqUserAdmin",
                privileges=[{"resource": any_database, "actions": ADMIN_ACTIONS}],
                roles=[],
            )
            root.admin.command("createUser", "goq-operator", pwd="operator-pw", roles=["goqUserAdmin"])
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def mongo_uri(auth_mongo: MongoServer) -> str:
    """The root URI: what the ``sidecars`` fixture would use unless a test names another."""
    return auth_mongo.uri


def admin_uri(server: MongoServer, password: str = "operator-pw") -> str:
    return f"mongodb://goq-operator:{password}@127.0.0.1:{server.port}/?replicaSet=rs0&authSource=admin"


async def write_secret(api: k8s.ApiClient, ns: str, name: str, uri: str) -> None:
    core = k8s.CoreV1Api(api)
    body = {"metadata": {"name": name, "namespace": ns}, "data": {"uri": base64.b64encode(uri.encode()).decode()}}
    try:
        await core.create_namespaced_secret(ns, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        await core.replace_namespaced_secret(name, ns, body)


@pytest.fixture(scope="module")
async def operator(
    kube_api: k8s.ApiClient, auth_mongo: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OperatorProcess]:
    await apply_crds(kube_api)
    await apply_rbac(kube_api, "sidecar.yaml")
    workdir = tmp_path_factory.mktemp("mongodb-users")
    env = {"GOQ_MONGODB_SECRET": SECRET, "GOQ_MONGODB_ADMIN_SECRET": ADMIN_SECRET}
    async with operator_namespace(kube_api, workdir) as (ns, kubeconfig):
        await write_secret(kube_api, ns, ADMIN_SECRET, admin_uri(auth_mongo))
        async with start_operator(kube_api, ns, kubeconfig, workdir, extra_env=env) as handle:
            yield handle


@contextlib.asynccontextmanager
async def goq_namespace(api: k8s.ApiClient, identity: str = "orders") -> AsyncIterator[str]:
    """A namespace with one GoQueue."""
    async with namespace(api, "users") as ns:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": identity}, "spec": {}}
        await k8s.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", body)
        yield ns


async def uri_in(api: k8s.ApiClient, ns: str) -> str | None:
    with contextlib.suppress(ApiException):
        secret = await k8s.CoreV1Api(api).read_namespaced_secret(SECRET, ns)
        return base64.b64decode(secret.data["uri"]).decode() if secret.data else None
    return None


async def provisioned(api: k8s.ApiClient, ns: str, name: str = "orders") -> Doc:
    found = await k8s.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", name)
    conditions = (found.get("status") or {}).get("conditions") or []
    return next((dict(c) for c in conditions if c["type"] == "Provisioned"), {})


async def user_of(server: MongoServer, database: str) -> Doc | None:
    """The user named after ``database``, as root reads it (``None``: there is none)."""
    async with AsyncMongoClient[Doc](server.uri) as root:
        users = (await root[database].command("usersInfo", {"user": database, "db": database}))["users"]
    return users[0] if users else None


async def may(uri: str, database: str) -> tuple[bool, bool]:
    """Whether the URI's user may (read, write) ``database``: refused means MongoDB's Unauthorized. A failed
    authentication is raised."""
    answers = []
    async with AsyncMongoClient[Doc](uri, serverSelectionTimeoutMS=10_000) as client:
        probe = client[database]["probe"]
        for attempt in (lambda: probe.find_one({}), lambda: probe.insert_one({"x": 1})):
            try:
                await attempt()
                answers.append(True)
            except OperationFailure as exc:
                if exc.code != UNAUTHORIZED:
                    raise
                answers.append(False)
    return answers[0], answers[1]


async def works(uri: str, database: str) -> bool:
    """The URI's user authenticates and may read and write ``database`` (for ``eventually``: the operator writes
    the Secret before it gives the user its password)."""
    try:
        return await may(uri, database) == (True, True)
    except OperationFailure as exc:
        if exc.code != AUTHENTICATION_FAILED:
            raise
        return False


async def test_each_namespace_gets_a_user_with_read_write_on_its_own_database_only(
    kube_api: k8s.ApiClient, operator: OperatorProcess, auth_mongo: MongoServer
) -> None:
    async with goq_namespace(kube_api) as a, goq_namespace(kube_api) as b:
        uri_a = await eventually(lambda: uri_in(kube_api, a))
        uri_b = await eventually(lambda: uri_in(kube_api, b))
        assert uri_a, f"no Secret {SECRET} in {a}; operator log:\n{operator.log()}"
        assert uri_b
        db_a, db_b = namespace_database(a), namespace_database(b)
        assert (uri_database(uri_a), uri_database(uri_b)) == (db_a, db_b)
        user_a, _ = credentials_in(uri_a) or ("", "")
        assert user_a == db_a
        assert credentials_in(uri_a) != credentials_in(uri_b)
        assert "goq-operator" not in uri_a, "the admin credential never leaves the operator's namespace"

        async def has_user() -> Doc | None:
            return await user_of(auth_mongo, db_a)

        user = await eventually(has_user)
        assert user is not None
        assert [(r["role"], r["db"]) for r in user["roles"]] == [("readWrite", db_a)]
        condition = await eventually(lambda: _true(provisioned(kube_api, a)))
        assert condition["status"] == "True", condition
        assert "the namespace's own MongoDB user" in condition["message"]

        assert await eventually(lambda: works(uri_a, db_a))
        assert await may(uri_a, db_b) == (False, False), "A's credential reads or writes B's database"
        assert await may(uri_a, "goq") == (False, False), "A's credential reaches the shared database"
        assert await eventually(lambda: works(uri_b, db_b))
        assert await may(uri_b, db_a) == (False, False)


async def _true(condition: Any) -> Doc:
    found: Doc = await condition
    return found if found.get("status") == "True" else {}


async def test_sidecars_with_only_their_namespaces_user_deliver_adopt_store_large_bodies_and_poison(
    kube_api: k8s.ApiClient, operator: OperatorProcess, auth_mongo: MongoServer, sidecars: Sidecars, apps: Apps
) -> None:
    async with goq_namespace(kube_api) as ns:
        uri = await eventually(lambda: uri_in(kube_api, ns))
        assert uri
        database = namespace_database(ns)
        assert await eventually(lambda: works(uri, database)), "the namespace's user never worked"
        env = {"GOQ_MONGODB_URI": uri, "GOQ_MONGODB_DATABASE": "", "GOQ_HEARTBEAT": "300ms", "GOQ_ADOPT_AFTER": "1s"}
        group = sidecars("orders", "billing", start=False, namespace=ns, **env)
        group["orders"].env["GOQ_INSTANCE"] = "orders-1"
        group["orders"].start()  # indexes made, its instance announced, with readWrite only
        orders = apps(group["orders"])
        payloads = [f"m{n}".encode() for n in range(40)]
        results = await orders.send("billing", payloads)
        assert all(r.WhichOneof("result") == "accepted" for r in results), results[:3]
        group["orders"].kill()  # billing was never up: the 40 wait in orders-1's outbox

        group["orders"].env["GOQ_INSTANCE"] = "orders-2"
        group["orders"].start()
        group["billing"].start()
        orders, billing = apps(group["orders"]), apps(group["billing"])
        got = await billing.receive(40, within=60, distinct=True)
        assert sorted(m.payload for m in got) == sorted(payloads), "orders-2 did not adopt orders-1's messages"

        receipt, sent = await send_large(orders, "billing", 3 * 1024 * 1024 + 5)
        assert receipt.id
        _, received = await receive_large(billing, within=120)
        assert received == sent

        await orders.send("billing", [b"refused by the app"])
        (bad,) = await billing.receive(1, within=60, ack=False)
        await billing.stub.Nack(pb.NackRequest(id=bad.id, requeue=False, reason="bad"))
        (entry,) = (await billing.stub.ListPoisoned(pb.ListPoisonedRequest())).messages
        assert (entry.id, entry.reason) == (bad.id, "nack")

        async with AsyncMongoClient[Doc](auth_mongo.uri) as root:
            collections = set(await root[database].list_collection_names())
            databases = set(await root.list_database_names())
        assert {"outbox", "inbox", "instances", "goq_large.files", "goq_large.chunks"} <= collections, collections
        assert "goq" not in databases, "a sidecar wrote to the shared database"
        for sidecar in group.values():
            assert "not authorized" not in sidecar.log(), sidecar.log()


async def test_a_deleted_secret_gets_a_new_password_and_the_old_one_stops_working(
    kube_api: k8s.ApiClient, operator: OperatorProcess
) -> None:
    async with goq_namespace(kube_api) as ns:
        old = await eventually(lambda: uri_in(kube_api, ns))
        assert old
        database = namespace_database(ns)
        assert await eventually(lambda: works(old, database))
        await k8s.CoreV1Api(kube_api).delete_namespaced_secret(SECRET, ns)

        async def renewed() -> str | None:
            found = await uri_in(kube_api, ns)
            return found if found and found != old else None

        new = await eventually(renewed)
        assert new
        user, _ = credentials_in(new) or ("", "")
        assert user == database
        assert await eventually(lambda: works(new, database))
        with pytest.raises(OperationFailure, match="Authentication failed"):
            await may(old, database)


async def test_a_bad_admin_secret_is_a_clear_error_in_the_log_and_the_condition(
    kube_api: k8s.ApiClient, operator: OperatorProcess, auth_mongo: MongoServer
) -> None:
    await write_secret(kube_api, operator.namespace, ADMIN_SECRET, admin_uri(auth_mongo, "wrong-password"))
    try:
        async with goq_namespace(kube_api) as ns:

            async def failed() -> Doc:
                found = await provisioned(kube_api, ns)
                return found if found.get("status") == "False" else {}

            condition = await eventually(failed)
            assert condition, f"no failed condition; operator log:\n{operator.log()}"
            assert condition["reason"] == "ProvisioningFailed"
            assert "MongoDB refused the admin user of GOQ_MONGODB_ADMIN_SECRET" in condition["message"]
            assert "authentication failed" in condition["message"]
            assert "authentication failed" in operator.log()
            assert await uri_in(kube_api, ns) is None, "a Secret was made without a user"
            assert await user_of(auth_mongo, namespace_database(ns)) is None

            await write_secret(kube_api, operator.namespace, ADMIN_SECRET, admin_uri(auth_mongo))
            condition = await eventually(lambda: _true(provisioned(kube_api, ns)))
            assert condition, f"not provisioned once the Secret was fixed; operator log:\n{operator.log()}"
            uri = await uri_in(kube_api, ns)
            assert uri
            assert await may(uri, namespace_database(ns)) == (True, True)
    finally:
        await write_secret(kube_api, operator.namespace, ADMIN_SECRET, admin_uri(auth_mongo))


async def test_an_admin_user_without_the_rights_to_manage_users_is_named_as_such(
    kube_api: k8s.ApiClient, operator: OperatorProcess, auth_mongo: MongoServer
) -> None:
    with MongoClient(auth_mongo.uri) as root, contextlib.suppress(OperationFailure):
        root.admin.command("createUser", "weak", pwd="weak-pw", roles=[{"role": "readWrite", "db": "goq"}])
    weak = f"mongodb://weak:weak-pw@127.0.0.1:{auth_mongo.port}/?replicaSet=rs0&authSource=admin"
    await write_secret(kube_api, operator.namespace, ADMIN_SECRET, weak)
    try:
        async with goq_namespace(kube_api) as ns:

            async def failed() -> Doc:
                found = await provisioned(kube_api, ns)
                return found if found.get("status") == "False" else {}

            condition = await eventually(failed)
            assert condition, f"no failed condition; operator log:\n{operator.log()}"
            assert "may not manage the namespaces' users: it lacks changePassword, createUser" in condition["message"]
            assert "userAdminAnyDatabase" in condition["message"]
    finally:
        await write_secret(kube_api, operator.namespace, ADMIN_SECRET, admin_uri(auth_mongo))


def test_a_namespace_uri_made_by_hand_for_another_base_still_names_the_same_user(auth_mongo: MongoServer) -> None:
    """The helper the operator uses gives a URI MongoDB accepts with the namespace's user (sanity of the layout)."""
    with MongoClient(auth_mongo.uri) as root:
        root["goq-handmade"].command("createUser", "goq-handmade", pwd="p@ss/word", roles=["readWrite"])
    uri = with_user(auth_mongo.uri, "goq-handmade", "p@ss/word", "goq-handmade")
    with MongoClient(uri) as client:
        client["goq-handmade"]["t"].insert_one({"ok": 1})
        with pytest.raises(OperationFailure) as refused:
            client["other"]["t"].insert_one({"ok": 1})
    assert refused.value.code == UNAUTHORIZED
