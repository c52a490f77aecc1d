"""Reading an unordered insert's errors: a duplicate key is an answer (the id was there), a write concern
error means nothing of the write is known to be durable."""

import pytest
from pymongo.errors import BulkWriteError

from goq.sidecar.adapters.stores.mongo.common import _inserted
from goq.sidecar.ports.stores import StoreUnavailableError


def error(**details: object) -> BulkWriteError:
    return BulkWriteError({"writeErrors": [], "writeConcernErrors": [], **details})


def test_duplicate_keys_mark_only_their_documents_as_not_new() -> None:
    clash = {"index": 1, "code": 11000, "errmsg": "E11000 duplicate key"}
    assert _inserted(error(writeErrors=[clash]), 3) == [True, False, True]


def test_a_write_concern_error_fails_the_whole_write() -> None:
    concern = {"code": 64, "errmsg": "waiting for replication timed out"}
    with pytest.raises(StoreUnavailableError, match="waiting for replication timed out"):
        _inserted(error(writeConcernErrors=[concern]), 3)


def test_a_write_concern_error_beside_duplicates_still_fails_the_write() -> None:
    clash = {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}
    concern = {"code": 91, "errmsg": "primary stepped down while waiting for replication"}
    with pytest.raises(StoreUnavailableError, match="stepped down"):
        _inserted(error(writeErrors=[clash], writeConcernErrors=[concern]), 2)


def test_any_other_write_error_fails_the_write() -> None:
    refused = {"index": 0, "code": 2, "errmsg": "document too large"}
    with pytest.raises(StoreUnavailableError, match="document too large"):
        _inserted(error(writeErrors=[refused]), 1)
