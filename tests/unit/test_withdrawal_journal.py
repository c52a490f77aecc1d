"""The journal of pending withdrawals: what it recorded is read back by the next start, what was dropped is not,
and a last line a crash cut short is ignored (and does not swallow the next entry)."""

import asyncio
import json
from pathlib import Path

import pytest

from goq.sidecar.adapters.stores.withdrawal_journal import JOURNAL_FILE, JournalError, WithdrawalJournal

GROUP = {"_id": "orders.default|g0123"}
FIRST_TRY = {"_id": "orders.default|x", "w": "aaaa"}
SECOND_TRY = {"_id": "orders.default|x", "w": "bbbb"}
RECEIVED = {"_id": "billing.default|g4567"}


def restarted(path: Path) -> dict[str, list[dict[str, str]]]:
    """What a sidecar starting on ``path`` finds pending."""
    return WithdrawalJournal(path).load()


async def test_recorded_filters_are_on_disk_when_record_returns_and_a_restart_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "local" / JOURNAL_FILE  # its directory is made on the first record
    journal = WithdrawalJournal(path)
    assert journal.load() == {}
    await journal.record("outbox", [GROUP, FIRST_TRY])
    await journal.record("inbox", [RECEIVED])
    assert restarted(path) == {"outbox": [GROUP, FIRST_TRY], "inbox": [RECEIVED]}


async def test_two_failed_writes_of_one_application_id_are_two_entries(tmp_path: Path) -> None:
    journal = WithdrawalJournal(tmp_path / JOURNAL_FILE)
    await journal.record("outbox", [FIRST_TRY])
    await journal.record("outbox", [SECOND_TRY])
    await journal.drop("outbox", [FIRST_TRY])
    assert restarted(journal.path) == {"outbox": [SECOND_TRY]}


async def test_dropped_filters_are_gone_after_a_restart_and_the_last_drop_removes_the_file(tmp_path: Path) -> None:
    journal = WithdrawalJournal(tmp_path / JOURNAL_FILE)
    await journal.record("outbox", [GROUP, FIRST_TRY])
    await journal.record("inbox", [RECEIVED])
    await journal.drop("outbox", [GROUP])
    assert restarted(journal.path) == {"outbox": [FIRST_TRY], "inbox": [RECEIVED]}
    await journal.drop("inbox", [RECEIVED])
    await journal.drop("outbox", [FIRST_TRY])
    assert not journal.path.exists()
    assert not (tmp_path / (JOURNAL_FILE + ".new")).exists()
    assert restarted(journal.path) == {}


async def test_a_filter_dropped_before_its_append_is_written_is_not_written(tmp_path: Path) -> None:
    journal = WithdrawalJournal(tmp_path / JOURNAL_FILE)
    recording = asyncio.create_task(journal.record("outbox", [GROUP]))
    await asyncio.sleep(0)  # recorded, its append not written yet
    await journal.drop("outbox", [GROUP])  # the delete was confirmed first
    await recording
    assert restarted(journal.path) == {}


async def test_a_torn_last_line_is_ignored_and_cut_off_before_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    whole = json.dumps({"c": "outbox", "f": GROUP}) + "\n"
    torn = json.dumps({"c": "outbox", "f": FIRST_TRY})[:20]  # an append a crash cut short: no newline
    path.write_text(whole + torn)
    journal = WithdrawalJournal(path)
    assert journal.load() == {"outbox": [GROUP]}
    assert path.read_text() == whole
    await journal.record("inbox", [RECEIVED])
    assert restarted(path) == {"outbox": [GROUP], "inbox": [RECEIVED]}


def test_an_unreadable_line_is_skipped_and_the_others_kept(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    lines = [json.dumps({"c": "outbox", "f": GROUP}), "{not json", json.dumps({"c": "inbox", "f": RECEIVED})]
    path.write_text("\n".join(lines) + "\n")
    assert restarted(path) == {"outbox": [GROUP], "inbox": [RECEIVED]}
    assert "not json" not in path.read_text()


async def test_a_journal_that_cannot_be_written_says_where_and_why(tmp_path: Path) -> None:
    (tmp_path / "local").write_text("a file where the directory should be")
    journal = WithdrawalJournal(tmp_path / "local" / JOURNAL_FILE)
    with pytest.raises(JournalError, match=r"withdrawals\.jsonl cannot be written"):
        await journal.record("outbox", [GROUP])
