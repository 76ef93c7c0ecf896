"""Thread ids follow the same rules on both stores: at most MAX_THREAD_ID_CHARS characters of
valid Unicode without control characters, and a one-line error that says what to use instead."""

from __future__ import annotations

import re

import pytest

from optical_memory import OpticalMemory
from optical_memory.apps.cli import main
from optical_memory.store import MAX_THREAD_ID_CHARS, NewPage, PageSpan, open_store

BAD_IDS = [
    ("u" * 1_000_000, "1 to 256 characters, not 1,000,000"),
    ("user-\ud800", "lone surrogate at index 5"),
    ("user\x00", "control character '\\x00'"),
    ("user\n42", "control character '\\n'"),
    ("", "1 to 256 characters, not 0"),
]


@pytest.mark.parametrize(("thread_id", "words"), BAD_IDS, ids=lambda v: repr(v)[:20])
def test_a_bad_thread_id_gets_the_same_clear_error_on_both_stores(
    store_location: str, thread_id: str, words: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        OpticalMemory(store_location, thread_id=thread_id)
    with open_store(store_location) as store:
        for write in (
            lambda: store.add_turn(thread_id, "user", "hello", None, 2),
            lambda: store.append_pages(thread_id, -1, [NewPage("h", (PageSpan(1, 0, 1),), 1)]),
            lambda: store.delete_thread(thread_id),
        ):
            with pytest.raises(ValueError, match=re.escape(words)) as raised:
                write()
            assert "\n" not in str(raised.value)
        assert store.thread_ids() == []  # nothing stored


def test_the_longest_thread_id_works_on_both_stores(store_location: str) -> None:
    longest = "😀" * MAX_THREAD_ID_CHARS  # 4 bytes a character in UTF-8
    with OpticalMemory(store_location, thread_id=longest, keep_recent_turns=1) as memory:
        for i in range(30):
            memory.add("user", f"turn {i} " + "word " * 40)
        assert memory.context().pages
        assert memory.threads() == [longest]
        assert memory.delete_thread() == 30


def test_the_cli_names_a_bad_thread_id_in_one_line(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "memory.db"
    with OpticalMemory(db, thread_id="t") as memory:
        memory.add("user", "hello")
    assert main(["threads", "export", "x" * 300, "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "1 to 256 characters" in err and err.count("\n") == 1
