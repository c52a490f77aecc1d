"""MongoDB connection strings as GoQ reads and writes them: the database a URI names, and one namespace's own.

Pure string work on the URI's standard layout (``mongodb[+srv]://[user:password@]hosts[/database][?options]``),
without the driver, so that the sidecar's settings can read it (only the sidecar's MongoDB adapters import
PyMongo).

With a user per namespace (``docs/operator.md``, ``GOQ_MONGODB_ADMIN_SECRET``) each GoQ namespace gets a
database and a user of the same name, ``goq-<namespace>``; the sidecars store in the database their URI
names.
"""

import hashlib
from typing import Final
from urllib.parse import quote, unquote

from goq.errors import ConfigError

DEFAULT_DATABASE: Final = "goq"
SYSTEM_DATABASES: Final = frozenset({"admin", "local", "config"})
"""Named in a URI, these say where the user is defined (the auth database), never where GoQ stores."""
MAX_DATABASE_BYTES: Final = 63
"""MongoDB refuses a database name of 64 bytes or more."""
_PREFIX: Final = "goq-"
_LONG_PREFIX: Final = "goq_"
_HASH_HEX: Final = 20
_AUTH_OPTIONS: Final = frozenset({"authsource", "authmechanism", "authmechanismproperties"})


def namespace_database(namespace: str) -> str:
    """The database (and the user) of a GoQ namespace: ``goq-<namespace>``, at most 63 bytes.

    A namespace (at most 63 characters of ``[a-z0-9-]``) longer than 59 characters becomes
    ``goq_<its first 38 characters>_<20 hex digits of its SHA-256>``. The two forms cannot meet (a namespace
    has no ``_``), and two long namespaces share a database only if their hashes' 80 bits do, which nobody
    can arrange: a namespace's user is never another's.
    """
    short = _PREFIX + namespace
    if len(short) <= MAX_DATABASE_BYTES:
        return short
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:_HASH_HEX]
    keep = MAX_DATABASE_BYTES - len(_LONG_PREFIX) - 1 - _HASH_HEX
    return f"{_LONG_PREFIX}{namespace[:keep]}_{digest}"


def _split(uri: str) -> tuple[str, str, str, str, str]:
    """``(scheme, userinfo, hosts, database, options)``; ``database`` still percent-encoded."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in ("mongodb", "mongodb+srv"):
        raise ConfigError("a MongoDB connection string starts with mongodb:// or mongodb+srv://")
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hosts = authority.rpartition("@")
    path, _, options = tail.partition("?")
    return scheme, userinfo if at else "", hosts, path.lstrip("/"), options


def uri_database(uri: str) -> str | None:
    """The database the URI names (its path), unless it names none or a system database (``admin``...)."""
    database = unquote(_split(uri)[3])
    return database if database and database not in SYSTEM_DATABASES else None


def store_database(uri: str | None, setting: str | None) -> str:
    """Where a sidecar stores: the URI's database, else ``GOQ_MONGODB_DATABASE``, else ``goq``.

    The URI wins, as is MongoDB's convention: with a user per namespace the URI names the only database the
    sidecar may use. Both set and different is refused rather than guessed: either choice would leave the
    messages stored under the other unseen.
    """
    named = uri_database(uri) if uri else None
    if named and setting and setting != named:
        raise ConfigError(
            f"GOQ_MONGODB_DATABASE is {setting!r} but GOQ_MONGODB_URI names the database {named!r}: the sidecar "
            "stores in one database; unset GOQ_MONGODB_DATABASE (the URI's database is used) or make them equal"
        )
    return named or setting or DEFAULT_DATABASE


def with_user(base: str, user: str, password: str, database: str) -> str:
    """``base`` (its hosts and options) for ``user`` of ``database``: its own credentials and authentication
    options dropped, the user's put in, the database as path and auth source."""
    scheme, _, hosts, _, options = _split(base)
    kept = [o for o in options.split("&") if o and o.partition("=")[0].lower() not in _AUTH_OPTIONS]
    query = "&".join([*kept, f"authSource={quote(database, safe='')}"])
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"{scheme}://{credentials}@{hosts}/{quote(database, safe='')}?{query}"


def credentials_in(uri: str) -> tuple[str, str] | None:
    """``(user, password)`` of the URI, decoded; ``None`` without a password."""
    userinfo = _split(uri)[1]
    user, colon, password = userinfo.partition(":")
    return (unquote(user), unquote(password)) if colon and user else None


def hosts_in(uri: str) -> str:
    """The URI's hosts, for messages (never its credentials)."""
    return _split(uri)[2]
