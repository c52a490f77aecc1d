"""Why a store could not be opened, in words that fit: a MongoDB that refuses the sidecar's user or credential
was reached, so the message says what the credential lacks and on which database, not "not reachable"."""

from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from goq.sidecar.adapters.stores.mongo.store import why_not_opened


def test_a_user_without_rights_is_named_as_lacking_them_on_the_database() -> None:
    refused = OperationFailure("not authorized on goq-7 to execute command { createIndexes: ... }", code=13)
    message = str(why_not_opened(refused, "goq-7"))
    assert message.startswith("MongoDB refused the sidecar's user on database 'goq-7'")
    assert "lacks the rights GoQ needs there (readWrite on 'goq-7')" in message
    assert "not authorized on goq-7" in message  # MongoDB's own words follow
    assert "not reachable" not in message


def test_a_credential_mongodb_does_not_know_is_named_as_such() -> None:
    refused = OperationFailure("Authentication failed.", code=18)
    message = str(why_not_opened(refused, "goq"))
    assert "did not accept the sidecar's credential" in message
    assert "'goq'" in message
    assert "not reachable" not in message


def test_a_mongodb_that_cannot_be_reached_is_still_not_reachable() -> None:
    message = str(why_not_opened(ServerSelectionTimeoutError("127.0.0.1:1: connection refused"), "goq"))
    assert message == "MongoDB not reachable: 127.0.0.1:1: connection refused"
