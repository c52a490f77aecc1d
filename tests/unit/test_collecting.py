"""After start-up the sidecar's long-lived objects are out of the cyclic collector's way."""

import gc
from collections.abc import Iterator

import pytest

from goq.sidecar.collecting import YOUNGEST_THRESHOLD, settle


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settling_freezes_what_exists_so_full_collections_skip_it(restored_gc: None) -> None:
    survivors = [[index] for index in range(1000)]  # lists are tracked by the collector
    before = gc.get_freeze_count()
    settle()
    assert gc.get_freeze_count() >= before + len(survivors)


def test_settling_lets_the_youngest_generation_grow_before_a_collection(restored_gc: None) -> None:
    _, middle, oldest = gc.get_threshold()
    settle()
    assert gc.get_threshold() == (YOUNGEST_THRESHOLD, middle, oldest)
