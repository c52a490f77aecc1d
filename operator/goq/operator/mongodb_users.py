"""A MongoDB user and database per GoQ namespace, made with the credential of ``GOQ_MONGODB_ADMIN_SECRET``.

The user of namespace N is ``goq-<N>`` (``goq.mongodb_uri.namespace_database``), defined in the database of
the same name, with the one role ``readWrite`` on that database: its sidecars can read and change their
namespace's stored messages and nothing else. The namespace's Secret holds the user's password; it is the
source of truth: the operator gives the user the password the Secret holds, so a Secret made anew (deleted,
or switched from a shared URI) means a new password, and a password set in the Secret is never lost.

The admin user needs, on every database (resource ``{db: "", collection: ""}``), the actions ``createUser``,
``changePassword``, ``grantRole``, ``revokeRole`` and ``viewUser`` (the built-in ``userAdminAnyDatabase`` has
them); they are checked once per admin URI (``connectionStatus``), so that a credential without them is one
clear message rather than a failure per namespace. Users are never dropped: a namespace whose GoQueues are
gone may still hold messages (docs/operator.md).
"""

import hashlib
import logging
from collections.abc import Mapping
from typing import Any, Final

from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from goq.errors import ConfigError
from goq.mongodb_uri import hosts_in, namespace_database

log = logging.getLogger("goq.operator")
ROLE: Final = "readWrite"
REQUIRED_ACTIONS: Final = frozenset({"createUser", "changePassword", "grantRole", "revokeRole", "viewUser"})
AUTH_FAILED: Final = 18
UNAUTHORIZED: Final = 13
USER_EXISTS: Final = 51003

Doc = dict[str, Any]


def missing_actions(privileges: list[Mapping[str, Any]]) -> set[str]:
    """The required actions the privileges (``connectionStatus``'s ``authenticatedUserPrivileges``) do not
    grant on every database. Pure."""
    granted: set[str] = set()
    for privilege in privileges:
        resource = privilege.get("resource") or {}
        if resource.get("anyResource") or (resource.get("db") == "" and resource.get("collection") == ""):
            actions = set(privilege.get("actions") or ())
            granted |= REQUIRED_ACTIONS if "anyAction" in actions else actions
    return set(REQUIRED_ACTIONS - granted)


def wanted_roles(database: str) -> list[Doc]:
    """The user's only role: ``readWrite`` on its own database."""
    return [{"role": ROLE, "db": database}]


def _fingerprint(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


class UserAdmin:
    """The operator's MongoDB connection as the admin user: checks it, makes and keeps the namespaces' users."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout_ms = int(timeout * 1000)
        self._client: AsyncMongoClient[Doc] | None = None
        self._uri: str | None = None
        self._checked = False
        self._set: dict[str, str] = {}
        """Database -> fingerprint of the password this process gave its user (skip setting it again)."""

    async def check(self, uri: str) -> str | None:
        """Why the admin URI cannot manage the namespaces' users; ``None`` when it can (checked once per URI)."""
        try:
            where = f"the admin user of GOQ_MONGODB_ADMIN_SECRET (MongoDB at {hosts_in(uri)})"
        except ConfigError as exc:
            return f"GOQ_MONGODB_ADMIN_SECRET's uri is not a MongoDB connection string: {exc}"
        if uri != self._uri:
            await self.close()
            try:
                self._client = AsyncMongoClient(
                    uri, timeoutMS=self._timeout_ms, serverSelectionTimeoutMS=self._timeout_ms, connect=False
                )
            except (ConfigurationError, ValueError) as exc:
                return f"GOQ_MONGODB_ADMIN_SECRET's uri is not a MongoDB connection string MongoDB accepts: {exc}"
            self._uri, self._checked = uri, False
        if self._checked:
            return None
        assert self._client is not None
        try:
            status = await self._client.admin.command("connectionStatus", showPrivileges=True)
        except OperationFailure as exc:
            if exc.code == AUTH_FAILED:
                return f"MongoDB refused {where}: authentication failed (wrong user, password or authSource)"
            return f"MongoDB refused {where}: {exc.details.get('errmsg') if exc.details else exc}"
        except PyMongoError as exc:
            return f"MongoDB did not answer {where}: {exc}"
        info = status.get("authInfo") or {}
        if not info.get("authenticatedUsers"):
            return f"{where} names no user: the uri needs a user that may manage users (user:password@)"
        missing = missing_actions(info.get("authenticatedUserPrivileges") or [])
        if missing:
            return (
                f"{where} may not manage the namespaces' users: it lacks {', '.join(sorted(missing))} on every "
                "database; give it the role userAdminAnyDatabase, or the role goqUserAdmin of docs/operator.md"
            )
        self._checked = True
        log.info("MongoDB users per namespace: %s may manage them", where)
        return None

    async def ensure(self, namespace: str, password: str) -> str | None:
        """Namespace's user exists with ``password`` and only ``readWrite`` on its database. What was done, if
        worth saying; raises ``PyMongoError`` (``OperationFailure``: refused) when it cannot."""
        assert self._client is not None, "check() first"
        database = namespace_database(namespace)
        db = self._client[database]
        roles = wanted_roles(database)
        found = (await db.command("usersInfo", {"user": database, "db": database})).get("users") or []
        current = [{"role": r["role"], "db": r["db"]} for r in found[0].get("roles", [])] if found else None
        if current == roles and self._set.get(database) == _fingerprint(password):
            return None
        if found:
            await db.command("updateUser", database, pwd=password, roles=roles)
            said = None if current == roles else f"MongoDB user {database}: roles set to {ROLE} on {database} only"
        else:
            try:
                await db.command("createUser", database, pwd=password, roles=roles)
                said = f"created MongoDB user {database} ({ROLE} on the database {database} only)"
            except OperationFailure as exc:
                if exc.code != USER_EXISTS:  # made meanwhile by someone else: take it over
                    raise
                await db.command("updateUser", database, pwd=password, roles=roles)
                said = f"MongoDB user {database}: password and roles set"
        self._set[database] = _fingerprint(password)
        return said

    def refused(self, exc: OperationFailure) -> None:
        """A command was refused: check the credential again before the next use (its rights may be gone)."""
        if exc.code in (AUTH_FAILED, UNAUTHORIZED):
            self._checked = False

    async def close(self) -> None:
        """Close the connection (a changed URI, the end)."""
        if self._client is not None:
            await self._client.close()
        self._client, self._uri, self._checked = None, None, False
