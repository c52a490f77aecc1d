"""What the sidecars of a namespace need, provided by the operator: the MongoDB Secret and the RoleBinding.

When a GoQueue or a pod asking for GoQ appears in a namespace, the operator copies the key ``uri`` of its
source Secret (``GOQ_MONGODB_SOURCE_SECRET``, in the operator's namespace) into the Secret the injected
sidecars read (``GOQ_MONGODB_SECRET``), and binds the sidecars' ClusterRole (``GOQ_SIDECAR_CLUSTER_ROLE``)
to the ServiceAccounts the GoQ pods run as, with the RoleBinding ``goq-sidecar``. The sweep keeps both in
line, so a changed source reaches every copy. Both carry the GoQ labels. An object of that name without
them was made by someone else and is never overwritten: when it does not give the sidecars what they need,
that is reported, like everything the operator cannot do, as the condition ``Provisioned`` of the
namespace's GoQueues and a Warning Event ``ProvisioningFailed``.

With ``GOQ_MONGODB_ADMIN_SECRET`` the Secret is no copy: each namespace gets a MongoDB user and database of
its own (``goq.operator.mongodb_users``), and its Secret the URI of that user (the source's hosts and options,
or the admin URI's when no source is set).

Why the pods' own ServiceAccounts, not the group ``system:serviceaccounts:<ns>``: the group would let every
workload of the namespace, GoQ or not, patch GoQueue status. Subjects are only ever added (an account seen
once stays bound): removing one would race with a new pod running as it.
"""

import asyncio
import base64
import binascii
import datetime
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException
from pymongo.errors import OperationFailure, PyMongoError

from goq import names
from goq.errors import ConfigError, GoQError, TemporaryError
from goq.mongodb_uri import credentials_in, namespace_database, with_user
from goq.operator.conditions import Condition, merge_conditions
from goq.operator.events import post_event
from goq.operator.keys import MANAGED_LABELS
from goq.operator.kube import body, call, custom, patch_goqueue_status
from goq.operator.mongodb_users import UserAdmin
from goq.operator.settings import OperatorSettings

log = logging.getLogger("goq.operator")
BINDING_NAME: Final = "goq-sidecar"
CONDITION: Final = "Provisioned"
URI_KEY: Final = "uri"
RBAC_GROUP: Final = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Source:
    """The operator's MongoDB URI (base64, as the API spells it), or why there is none."""

    uri: str | None
    problem: str | None = None
    base: str | None = None
    """A user per namespace (the admin user checked): the URI, decoded, whose hosts and options each
    namespace's URI takes; ``uri`` is then unused."""


@dataclass(frozen=True)
class Step:
    """What one object needs: ``write`` this body (``None``: nothing), and/or a ``problem`` to report."""

    write: dict[str, Any] | None = None
    problem: str | None = None
    recreate: bool = False
    """The body changes what the API never changes in place (a RoleBinding's roleRef): delete, then create."""


@dataclass
class Outcome:
    """What providing a namespace came to."""

    problems: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    settled: bool = True
    """False: a passing failure (conflict, API server busy); the next sweep tries again, nothing is reported."""
    gone: bool = False
    """The namespace is gone or being deleted."""


def managed(obj: Mapping[str, Any] | None) -> bool:
    """Made by the operator (it carries the GoQ labels)."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/managed-by") == MANAGED_LABELS["app.kubernetes.io/managed-by"]


def secret_step(namespace: str, name: str, found: Mapping[str, Any] | None, source: Source) -> Step:
    """The MongoDB Secret of ``namespace`` (a dict as read, or ``None``) against the source. Pure."""
    where = f"Secret {namespace}/{name}"
    if found is None:
        if source.uri is None:
            return Step(problem=f"{where} is missing, so the sidecars here cannot start: {source.problem}")
        wanted = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_LABELS)},
            "type": "Opaque",
            "data": {URI_KEY: source.uri},
        }
        return Step(write=wanted)
    current = (found.get("data") or {}).get(URI_KEY)
    if not managed(found):
        if current is None:
            return Step(
                problem=f"{where} has no key {URI_KEY!r}, so the sidecars here cannot start; it was not made by "
                "GoQ (no label app.kubernetes.io/managed-by=goq-operator) and is left as it is: add the key, "
                "or delete the Secret to let the operator provide it"
            )
        if source.uri is not None and current != source.uri:
            return Step(
                problem=f"{where} was not made by GoQ (no label app.kubernetes.io/managed-by=goq-operator) and "
                "its uri differs from the operator's; it is left as it is and the sidecars here use it: delete "
                "it to let the operator provide it"
            )
        return Step()
    if source.uri is None:
        return Step(problem=f"{where} is kept as it was, not updated: {source.problem}")
    if current == source.uri and set(found.get("data") or {}) == {URI_KEY}:
        return Step()
    meta = found["metadata"]
    wanted = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(meta.get("labels") or {}), **MANAGED_LABELS},
            "resourceVersion": meta["resourceVersion"],
        },
        "type": "Opaque",
        "data": {URI_KEY: source.uri},
    }
    return Step(write=wanted)


def _decoded(found: Mapping[str, Any] | None) -> str | None:
    encoded = ((found or {}).get("data") or {}).get(URI_KEY)
    try:
        return base64.b64decode(encoded).decode() if encoded else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def user_secret_step(
    namespace: str, name: str, found: Mapping[str, Any] | None, base: str, new_password: str
) -> tuple[Step, str | None]:
    """The MongoDB Secret of ``namespace`` with a user per namespace: the step, and the password the
    namespace's user must have (``None``: a user's own Secret, the operator leaves MongoDB alone). The
    password the Secret holds is kept; ``new_password`` is for a Secret without one. Pure."""
    where = f"Secret {namespace}/{name}"
    user = namespace_database(namespace)
    current = _decoded(found)
    try:
        held = credentials_in(current) if current else None
    except ConfigError:
        held = None
    if found is not None and not managed(found):
        if current is None:
            return Step(
                problem=f"{where} has no key {URI_KEY!r}, so the sidecars here cannot start; it was not made by "
                "GoQ (no label app.kubernetes.io/managed-by=goq-operator) and is left as it is: add the key, "
                "or delete the Secret to let the operator provide it"
            ), None
        if held is None or held[0] != user:
            return Step(
                problem=f"{where} was not made by GoQ (no label app.kubernetes.io/managed-by=goq-operator) and its "
                f"uri does not name the namespace's MongoDB user {user}, so the sidecars here may reach more than "
                "their namespace's messages; it is left as it is: delete it to let the operator provide it"
            ), None
        return Step(), None
    password = held[1] if held and held[0] == user and held[1] else new_password
    uri = with_user(base, user, password, user)
    if found is not None and current == uri and set(found.get("data") or {}) == {URI_KEY}:
        return Step(), password
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(MANAGED_LABELS)}
    if found is not None:
        meta["labels"] = {**(found["metadata"].get("labels") or {}), **MANAGED_LABELS}
        meta["resourceVersion"] = found["metadata"]["resourceVersion"]
    wanted = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "data": {URI_KEY: base64.b64encode(uri.encode()).decode()},
    }
    return Step(write=wanted), password


def _bound(subjects: Iterable[Mapping[str, Any]], namespace: str, account: str) -> bool:
    for subject in subjects:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "ServiceAccount" and name == account and subject.get("namespace", namespace) == namespace:
            return True
        if kind == "Group" and name in ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"):
            return True
    return False


def binding_step(namespace: str, role: str, found: Mapping[str, Any] | None, accounts: Iterable[str]) -> Step:
    """The RoleBinding ``goq-sidecar`` of ``namespace`` (a dict as read, or ``None``) for ``accounts``. Pure."""
    where = f"RoleBinding {namespace}/{BINDING_NAME}"
    role_ref = {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role}
    subjects = list((found or {}).get("subjects") or [])
    missing = sorted(a for a in set(accounts) if not _bound(subjects, namespace, a))
    if found is not None and not managed(found):
        ref = found.get("roleRef") or {}
        if (ref.get("kind"), ref.get("name")) != ("ClusterRole", role):
            return Step(
                problem=f"{where} was not made by GoQ and binds {ref.get('kind')} {ref.get('name')}, not "
                f"ClusterRole {role}; it is left as it is: delete it to let the operator provide it"
            )
        if missing:
            return Step(
                problem=f"{where} was not made by GoQ and does not bind ServiceAccount {', '.join(missing)}, "
                "so those sidecars cannot report (403); it is left as it is: add them, or delete it to let "
                "the operator provide it"
            )
        return Step()
    if found is None and not missing:
        return Step()  # nothing to bind yet: made when the first pod asking for GoQ appears
    recreate = found is not None and (found.get("roleRef") or {}).get("name") != role
    if found is not None and not missing and not recreate:
        return Step()
    added = [{"kind": "ServiceAccount", "name": a, "namespace": namespace} for a in missing]
    meta: dict[str, Any] = {"name": BINDING_NAME, "namespace": namespace, "labels": dict(MANAGED_LABELS)}
    if found is not None and not recreate:
        meta["resourceVersion"] = found["metadata"]["resourceVersion"]
    wanted = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": role_ref,
        "subjects": [*subjects, *added],
    }
    return Step(write=wanted, recreate=recreate)


def provisioned_condition(outcome: Outcome, provides: str) -> Condition:
    """The GoQueue condition ``Provisioned`` for what providing its namespace came to. Pure."""
    if outcome.problems:
        return Condition(CONDITION, False, "ProvisioningFailed", "; ".join(outcome.problems))
    return Condition(CONDITION, True, "Provisioned", provides)


def _explain(exc: ApiException) -> str:
    """The API server's own message (it names the missing permission), else the status line."""
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or f"{exc.status} {exc.reason}")


def _namespace_gone(exc: ApiException, namespace: str) -> bool:
    text = str(exc.body)
    return (exc.status == 403 and "being terminated" in text) or (
        exc.status == 404 and f'namespaces "{namespace}" not found' in text
    )


class NamespaceProvider:
    """Provides, keeps in line and reports the MongoDB Secret and the RoleBinding of every GoQ namespace."""

    def __init__(self, api: k8s.ApiClient, settings: OperatorSettings) -> None:
        self._api = api
        self._core = k8s.CoreV1Api(api)
        self._rbac = k8s.RbacAuthorizationV1Api(api)
        self._operator_namespace = settings.namespace
        self._secret = settings.sidecar.mongodb_secret
        self._source = settings.provisioning.mongodb_source
        self._admin_secret = settings.provisioning.mongodb_admin
        self._users = UserAdmin() if self._admin_secret else None
        self._admin_problem: str | None = None
        self._role = settings.provisioning.sidecar_role
        self._accounts: dict[str, set[str]] = defaultdict(set)
        """ServiceAccounts GoQ pods were seen to run as, by namespace (pod events, also at start)."""
        self._settled: set[str] = set()
        """Namespaces whose last provisioning found nothing wrong (a pod event then only checks its account)."""
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def provides(self) -> str:
        """What this operator provides, for a condition's message."""
        parts = []
        if self._secret and self._admin_secret:
            parts.append(f"Secret {self._secret} (the namespace's own MongoDB user, readWrite on its database only)")
        elif self._secret:
            source = f" (from {self._operator_namespace}/{self._source})" if self._source else " (made by the user)"
            parts.append(f"Secret {self._secret}{source}")
        if self._role:
            parts.append(f"RoleBinding {BINDING_NAME} (ClusterRole {self._role} for the pods' ServiceAccounts)")
        return " and ".join(parts) + " in place" if parts else "nothing to provide (no Secret or ClusterRole set)"

    async def read_source(self) -> Source:
        """The source Secret's ``uri``; why not, when there is none. With a user per namespace: the admin
        user, checked, and the URI the namespaces' URIs are made from."""
        if self._admin_secret:
            return await self._read_admin()
        if not self._source:
            return Source(
                None,
                "the operator has no source to copy it from (GOQ_MONGODB_SOURCE_SECRET is unset): make it by "
                "hand, with the key uri",
            )
        where = f"Secret {self._operator_namespace}/{self._source} (GOQ_MONGODB_SOURCE_SECRET)"
        try:
            found = await self._core.read_namespaced_secret(self._source, self._operator_namespace)
        except ApiException as exc:
            if exc.status == 404:
                return Source(None, f"the operator's source {where} does not exist")
            return Source(None, f"the operator cannot read its source {where}: {_explain(exc)}")
        uri = (found.data or {}).get(URI_KEY)
        if not uri:
            return Source(None, f"the operator's source {where} has no key {URI_KEY!r}")
        return Source(uri)

    async def _read_secret_uri(self, name: str, setting: str) -> tuple[str | None, str | None]:
        """The decoded ``uri`` of Secret ``name`` of the operator's namespace, or why there is none."""
        where = f"Secret {self._operator_namespace}/{name} ({setting})"
        try:
            found = await self._core.read_namespaced_secret(name, self._operator_namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None, f"the operator's {where} does not exist"
            return None, f"the operator cannot read its {where}: {_explain(exc)}"
        uri = _decoded(self._api.sanitize_for_serialization(found))
        if not uri:
            return None, f"the operator's {where} has no key {URI_KEY!r} (a MongoDB connection string)"
        return uri, None

    async def _read_admin(self) -> Source:
        source = await self._admin_source()
        if source.problem != self._admin_problem:  # logged once per change, not every sweep
            if source.problem:
                log.error("MongoDB users per namespace: %s", source.problem)
            self._admin_problem = source.problem
        return source

    async def _admin_source(self) -> Source:
        assert self._admin_secret
        assert self._users
        admin, problem = await self._read_secret_uri(self._admin_secret, "GOQ_MONGODB_ADMIN_SECRET")
        if admin is None:
            return Source(None, f"{problem}, so no namespace gets its MongoDB user")
        problem = await self._users.check(admin)
        if problem:
            return Source(None, problem)
        base: str | None = admin
        if self._source:
            base, problem = await self._read_secret_uri(self._source, "GOQ_MONGODB_SOURCE_SECRET")
            if base is None:
                return Source(None, f"{problem}: it gives the namespaces' URIs their hosts and options")
        assert base is not None
        try:
            credentials_in(base)
        except ConfigError as exc:
            return Source(None, f"the URI the namespaces' URIs are made from is not one: {exc}")
        return Source(None, base=base)

    async def provide(self, namespace: str, source: Source | None = None) -> Outcome:
        """Bring the Secret and the RoleBinding of ``namespace`` in line; never raises for API failures."""
        outcome = Outcome()
        if namespace == self._operator_namespace:
            return outcome  # never injected; and the source lives here
        try:
            async with self._locks[namespace]:
                if self._secret:
                    await self._secret_in(namespace, source or await self.read_source(), outcome)
                if self._role and not outcome.gone:
                    await self._binding_in(namespace, outcome)
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            outcome.settled = False
            log.warning("namespace %s not provided yet, the API server did not answer: %s", namespace, exc)
        if outcome.gone:
            self.forget(namespace)
        elif outcome.settled and not outcome.problems:
            self._settled.add(namespace)
        else:
            self._settled.discard(namespace)
        return outcome

    def forget(self, namespace: str) -> None:
        """The namespace is gone: drop what is remembered of it."""
        self._accounts.pop(namespace, None)
        self._settled.discard(namespace)
        self._locks.pop(namespace, None)

    async def _secret_in(self, namespace: str, source: Source, outcome: Outcome) -> None:
        assert self._secret
        name = self._secret
        try:
            read = await self._core.read_namespaced_secret(name, namespace)
            found: dict[str, Any] | None = self._api.sanitize_for_serialization(read)
        except ApiException as exc:
            if exc.status != 404:
                self._failed(f"read Secret {namespace}/{name}", exc, namespace, outcome)
                return
            found = None
        if source.base is not None:
            await self._user_secret_in(namespace, found, source.base, outcome)
            return
        step = secret_step(namespace, name, found, source)
        if step.problem:
            outcome.problems.append(step.problem)
        if step.write is None:
            return
        try:
            if found is None:
                await self._core.create_namespaced_secret(namespace, body(step.write))
                outcome.done.append(f"created Secret {name} from {self._operator_namespace}/{self._source}")
            else:
                await self._core.replace_namespaced_secret(name, namespace, body(step.write))
                outcome.done.append(
                    f"updated Secret {name} from {self._operator_namespace}/{self._source}: pods started "
                    "before read the old uri until they restart"
                )
        except ApiException as exc:
            self._failed(f"write Secret {namespace}/{name}", exc, namespace, outcome)

    async def _user_secret_in(self, namespace: str, found: dict[str, Any] | None, base: str, outcome: Outcome) -> None:
        """The Secret first, then the user: a password is in the Secret before MongoDB has it, so it is never
        lost (a failed step is redone by the next sweep with the Secret's password)."""
        assert self._secret
        assert self._users
        name, user = self._secret, namespace_database(namespace)
        step, password = user_secret_step(namespace, name, found, base, secrets.token_urlsafe(32))
        if step.problem:
            outcome.problems.append(step.problem)
        if step.write is not None:
            try:
                if found is None:
                    await self._core.create_namespaced_secret(namespace, body(step.write))
                    outcome.done.append(f"created Secret {name} for the MongoDB user {user}")
                else:
                    await self._core.replace_namespaced_secret(name, namespace, body(step.write))
                    outcome.done.append(
                        f"updated Secret {name} for the MongoDB user {user}: pods started before use the old uri "
                        "until they restart"
                    )
            except ApiException as exc:
                self._failed(f"write Secret {namespace}/{name}", exc, namespace, outcome)
                return
        if password is None:
            return
        try:
            said = await self._users.ensure(namespace, password)
        except OperationFailure as exc:
            self._users.refused(exc)
            reason = exc.details.get("errmsg") if exc.details else str(exc)
            outcome.problems.append(f"MongoDB refused to make or update the user {user} of this namespace: {reason}")
            return
        except PyMongoError as exc:
            outcome.settled = False
            log.warning("namespace %s: MongoDB user %s not made yet, MongoDB did not answer: %s", namespace, user, exc)
            return
        if said:
            outcome.done.append(said)

    async def _binding_in(self, namespace: str, outcome: Outcome) -> None:
        assert self._role
        accounts = sorted(self._accounts.get(namespace, ()))
        try:
            read = await self._rbac.read_namespaced_role_binding(BINDING_NAME, namespace)
            found: dict[str, Any] | None = self._api.sanitize_for_serialization(read)
        except ApiException as exc:
            if exc.status != 404:
                self._failed(f"read RoleBinding {namespace}/{BINDING_NAME}", exc, namespace, outcome)
                return
            found = None
        step = binding_step(namespace, self._role, found, accounts)
        if step.problem:
            outcome.problems.append(step.problem)
        if step.write is None:
            return
        try:
            if step.recreate:
                await self._rbac.delete_namespaced_role_binding(BINDING_NAME, namespace)
            if found is None or step.recreate:
                await self._rbac.create_namespaced_role_binding(namespace, body(step.write))
            else:
                await self._rbac.replace_namespaced_role_binding(BINDING_NAME, namespace, body(step.write))
        except ApiException as exc:
            self._failed(f"write RoleBinding {namespace}/{BINDING_NAME}", exc, namespace, outcome)
            return
        bound = ", ".join(s["name"] for s in step.write["subjects"])
        outcome.done.append(f"RoleBinding {BINDING_NAME} binds ClusterRole {self._role} to ServiceAccount {bound}")

    def _failed(self, doing: str, exc: ApiException, namespace: str, outcome: Outcome) -> None:
        if _namespace_gone(exc, namespace):
            outcome.gone = True
        elif exc.status in (409, 429) or (exc.status or 0) >= 500:
            outcome.settled = False
            log.info("could not %s, trying again on the next sweep: %s %s", doing, exc.status, exc.reason)
        else:
            outcome.problems.append(f"the operator may not {doing}: {_explain(exc)}")

    async def pod_seen(self, pod: Mapping[str, Any]) -> None:
        """A pod asking for GoQ: its namespace gets what its sidecar needs now, its account bound."""
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace")
        if not namespace or namespace == self._operator_namespace:
            return
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        known = account in self._accounts[namespace]
        self._accounts[namespace].add(account)
        if known and namespace in self._settled:
            return
        outcome = await self.provide(namespace)
        if outcome.problems:
            involved = {"apiVersion": "v1", "kind": "Pod", "metadata": meta}
            message = "the sidecar of this pod may not work: " + "; ".join(outcome.problems)
            await post_event(self._api, involved, "Warning", "ProvisioningFailed", message)

    async def goqueue_seen(self, goqueue: Mapping[str, Any]) -> None:
        """A GoQueue appeared or changed: provide its namespace and say so in its condition."""
        outcome = await self.provide(goqueue["metadata"]["namespace"])
        await self.report(goqueue, outcome)

    async def report(self, goqueue: Mapping[str, Any], outcome: Outcome) -> None:
        """The GoQueue's condition ``Provisioned``, and an Event when it changes; only when it changes."""
        if not outcome.settled or outcome.gone or goqueue["metadata"].get("deletionTimestamp"):
            return
        meta = goqueue["metadata"]
        status = goqueue.get("status") or {}
        wanted = provisioned_condition(outcome, self.provides())
        old: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == CONDITION), {})
        if (old.get("status"), old.get("reason"), old.get("message")) == (
            "True" if wanted.status else "False",
            wanted.reason,
            wanted.message,
        ):
            if outcome.done:  # repaired or updated in place: worth a line in ``kubectl describe``
                await post_event(self._api, goqueue, "Normal", "Provisioned", "; ".join(outcome.done))
            return
        now = datetime.datetime.now(datetime.UTC)
        conditions = merge_conditions(status.get("conditions"), [wanted], now, meta.get("generation"))
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": {"conditions": conditions}}
        try:
            await patch_goqueue_status(self._api, meta["namespace"], meta["name"], patch)
        except GoQError as exc:  # a conflict with a heartbeat, most likely: the next sweep writes it
            log.info(
                "condition %s of GoQueue %s/%s not written yet: %s", CONDITION, meta["namespace"], meta["name"], exc
            )
            return
        if wanted.status:
            done = "; ".join(outcome.done)
            await post_event(
                self._api, goqueue, "Normal", wanted.reason, f"{wanted.message}{'; ' if done else ''}{done}"
            )
        else:
            await post_event(self._api, goqueue, "Warning", wanted.reason, wanted.message)

    async def sweep(self) -> None:
        """Every namespace with a GoQueue or a GoQ pod provided and reported once (the source read once)."""
        listed = await call(
            "listing GoQueues",
            custom(self._api).list_cluster_custom_object(names.GROUP, names.VERSION, names.GOQUEUE_PLURAL),
        )
        by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for goqueue in listed.get("items", []):
            by_namespace[goqueue["metadata"]["namespace"]].append(goqueue)
        try:
            source = await self.read_source() if self._secret else None
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise TemporaryError(f"reading the MongoDB source Secret: the API server did not answer ({exc})") from exc
        for namespace in sorted(set(by_namespace) | set(self._accounts)):
            outcome = await self.provide(namespace, source)
            for done in outcome.done:
                log.info("namespace %s: %s", namespace, done)
            for goqueue in by_namespace.get(namespace, []):
                await self.report(goqueue, outcome)
