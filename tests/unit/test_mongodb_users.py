"""A MongoDB user and database per namespace, the pure parts: names, URIs, the Secret step, the admin's rights,
the settings, and which database a sidecar stores in."""

import base64
import re
from typing import Any

import pytest

from goq.errors import ConfigError
from goq.mongodb_uri import (
    credentials_in,
    namespace_database,
    store_database,
    uri_database,
    with_user,
)
from goq.operator.mongodb_users import REQUIRED_ACTIONS, UserAdmin, missing_actions
from goq.operator.provisioning import user_secret_step
from goq.operator.settings import OperatorSettings
from goq.sidecar.settings import SidecarSettings

MANAGED = {"app.kubernetes.io/managed-by": "goq-operator", "app.kubernetes.io/part-of": "goq"}
BASE = "mongodb://root:hunter2@db-0.mongo:27017,db-1.mongo:27017/admin?replicaSet=rs0&authSource=admin&tls=true"
MONGODB_FORBIDDEN = set('/\\. "$*<>:|?')


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def decoded(step_write: dict[str, Any]) -> str:
    return base64.b64decode(step_write["data"]["uri"]).decode()


def secret(uri: str | None, labels: dict[str, str] | None = MANAGED) -> dict[str, Any]:
    return {
        "metadata": {"name": "goq-mongodb", "resourceVersion": "7", "labels": labels},
        "data": {"uri": encoded(uri)} if uri is not None else {},
    }


def test_a_namespace_gets_the_database_goq_dash_namespace() -> None:
    assert namespace_database("shop") == "goq-shop"
    assert namespace_database("a" * 59) == "goq-" + "a" * 59


@pytest.mark.parametrize("namespace", ["a" * 60, "a" * 63, "team-" + "x" * 58, "z" * 59 + "-abc"])
def test_a_long_namespace_gets_a_hashed_name_within_mongodbs_63_bytes(namespace: str) -> None:
    database = namespace_database(namespace)
    assert len(database.encode()) <= 63
    assert database.startswith("goq_")
    assert not MONGODB_FORBIDDEN & set(database)
    assert re.fullmatch(r"goq_[a-z0-9-]{38}_[0-9a-f]{20}", database)


def test_namespaces_never_share_a_database_not_even_one_named_like_a_hashed_name() -> None:
    long_one = "n" * 63
    hashed = namespace_database(long_one)
    lookalike = hashed[len("goq_") :]  # 59 characters, but a namespace cannot hold "_"
    assert namespace_database(long_one[:-1] + "m") != hashed, "same 38-character prefix, another database"
    assert namespace_database(lookalike.replace("_", "-")) != hashed


def test_the_sidecar_stores_in_the_database_the_uri_names() -> None:
    assert store_database("mongodb://u:p@h:1/goq-shop?authSource=goq-shop", None) == "goq-shop"
    assert store_database("mongodb://u:p@h:1/goq-shop", "goq-shop") == "goq-shop"


def test_without_a_database_in_the_uri_the_setting_then_goq_is_used_as_before() -> None:
    assert store_database("mongodb://h:1/?replicaSet=rs0", "t_1") == "t_1"
    assert store_database("mongodb://h:1/?replicaSet=rs0", None) == "goq"
    assert store_database("mongodb://h:1", "") == "goq"
    assert store_database(None, None) == "goq"


def test_a_uri_naming_admin_names_where_its_user_is_not_where_goq_stores() -> None:
    assert uri_database("mongodb://u:p@h:1/admin") is None
    assert store_database("mongodb://u:p@h:1/admin", None) == "goq"


def test_a_uri_and_a_setting_naming_different_databases_are_refused() -> None:
    with pytest.raises(ConfigError, match="GOQ_MONGODB_DATABASE is 'other' but GOQ_MONGODB_URI names the database"):
        store_database("mongodb://u:p@h:1/goq-shop", "other")


def test_the_sidecar_settings_take_the_uris_database() -> None:
    env = {"GOQ_IDENTITY": "orders", "GOQ_MONGODB_URI": "mongodb://u:p@127.0.0.1:1/goq-shop?authSource=goq-shop"}
    assert SidecarSettings.from_env(env).mongodb_database == "goq-shop"
    assert SidecarSettings.from_env({"GOQ_IDENTITY": "orders"}).mongodb_database == "goq"


def test_a_namespace_uri_keeps_the_hosts_and_options_and_replaces_the_credentials() -> None:
    uri = with_user(BASE, "goq-shop", "s3cret", "goq-shop")
    assert uri == (
        "mongodb://goq-shop:s3cret@db-0.mongo:27017,db-1.mongo:27017/goq-shop?replicaSet=rs0&tls=true"
        "&authSource=goq-shop"
    )
    assert "root" not in uri
    assert "hunter2" not in uri
    assert credentials_in(uri) == ("goq-shop", "s3cret")
    assert uri_database(uri) == "goq-shop"


def test_a_namespace_uri_drops_the_bases_authentication_mechanism_and_keeps_srv() -> None:
    base = "mongodb+srv://cluster.example/?authMechanism=MONGODB-X509&authMechanismProperties=X:Y&retryWrites=true"
    uri = with_user(base, "goq-a", "p/w@:?", "goq-a")
    assert uri == "mongodb+srv://goq-a:p%2Fw%40%3A%3F@cluster.example/goq-a?retryWrites=true&authSource=goq-a"
    assert credentials_in(uri) == ("goq-a", "p/w@:?")


def test_a_new_namespace_secret_names_its_own_user_with_a_new_password() -> None:
    step, password = user_secret_step("shop", "goq-mongodb", None, BASE, "fresh")
    assert step.problem is None
    assert step.write is not None
    assert password == "fresh"
    assert decoded(step.write) == with_user(BASE, "goq-shop", "fresh", "goq-shop")
    assert step.write["metadata"]["labels"] == MANAGED
    assert "resourceVersion" not in step.write["metadata"]


def test_the_password_in_the_secret_is_kept_and_nothing_is_written_when_it_is_in_line() -> None:
    held = with_user(BASE, "goq-shop", "kept", "goq-shop")
    step, password = user_secret_step("shop", "goq-mongodb", secret(held), BASE, "fresh")
    assert (step.write, step.problem, password) == (None, None, "kept")


def test_a_changed_base_rewrites_the_secret_with_the_same_password() -> None:
    held = with_user("mongodb://old-host:27017/", "goq-shop", "kept", "goq-shop")
    step, password = user_secret_step("shop", "goq-mongodb", secret(held), BASE, "fresh")
    assert step.write is not None
    assert password == "kept"
    assert decoded(step.write) == with_user(BASE, "goq-shop", "kept", "goq-shop")
    assert step.write["metadata"]["resourceVersion"] == "7"


def test_a_copied_shared_uri_is_replaced_by_the_namespaces_own_user() -> None:
    step, password = user_secret_step("shop", "goq-mongodb", secret(BASE), BASE, "fresh")
    assert step.write is not None
    assert password == "fresh", "root's password is never taken over"
    assert credentials_in(decoded(step.write)) == ("goq-shop", "fresh")


def test_a_users_own_secret_is_left_alone_and_reported_unless_it_names_the_namespaces_user() -> None:
    shared, _ = user_secret_step("shop", "goq-mongodb", secret(BASE, labels={}), BASE, "fresh")
    assert shared.write is None
    assert shared.problem is not None
    assert "does not name the namespace's MongoDB user goq-shop" in shared.problem
    own = with_user(BASE, "goq-shop", "theirs", "goq-shop")
    step, password = user_secret_step("shop", "goq-mongodb", secret(own, labels={}), BASE, "fresh")
    assert (step.write, step.problem, password) == (None, None, None)


def test_the_admin_needs_every_user_action_on_every_database() -> None:
    any_db = {"db": "", "collection": ""}
    assert missing_actions([{"resource": any_db, "actions": sorted(REQUIRED_ACTIONS)}]) == set()
    assert missing_actions([{"resource": {"anyResource": True}, "actions": ["anyAction"]}]) == set()
    assert missing_actions(
        [{"resource": {"db": "goq-shop", "collection": ""}, "actions": sorted(REQUIRED_ACTIONS)}]
    ) == (set(REQUIRED_ACTIONS))
    assert missing_actions([{"resource": any_db, "actions": ["createUser", "viewUser"]}]) == {
        "changePassword",
        "grantRole",
        "revokeRole",
    }


def test_the_admin_secret_setting_needs_the_namespace_secret_and_no_fixed_database() -> None:
    settings = OperatorSettings.from_env({"GOQ_MONGODB_SECRET": "goq-mongodb", "GOQ_MONGODB_ADMIN_SECRET": "adm"})
    assert settings.provisioning.mongodb_admin == "adm"
    assert OperatorSettings.from_env({}).provisioning.mongodb_admin is None
    with pytest.raises(ConfigError, match="GOQ_MONGODB_ADMIN_SECRET needs GOQ_MONGODB_SECRET"):
        OperatorSettings.from_env({"GOQ_MONGODB_ADMIN_SECRET": "adm"})
    with pytest.raises(ConfigError, match="GOQ_SIDECAR_ENV sets GOQ_MONGODB_DATABASE"):
        OperatorSettings.from_env(
            {
                "GOQ_MONGODB_SECRET": "goq-mongodb",
                "GOQ_MONGODB_ADMIN_SECRET": "adm",
                "GOQ_SIDECAR_ENV": "GOQ_MONGODB_DATABASE=goq",
            }
        )


@pytest.mark.parametrize("uri", ["http://db:27017/", "db:27017", "mongodb://u:p@h:1/?replicaSet=rs0&&"])
async def test_an_admin_uri_that_is_no_mongodb_connection_string_is_said_so_before_anything_is_tried(uri: str) -> None:
    admin = UserAdmin(timeout=0.5)
    try:
        problem = await admin.check(uri)
    finally:
        await admin.close()
    assert problem is not None
    assert problem.startswith("GOQ_MONGODB_ADMIN_SECRET's uri is not a MongoDB connection string")
