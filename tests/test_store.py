"""SQLiteStore: schema, durability settings, threads, frozen pages and the two caches."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from optical_memory.store import (
    SCHEMA_VERSION,
    NewPage,
    PageSpan,
    SQLiteStore,
    Store,
    StoreError,
    TextQuery,
)


def page(turn_id: int, end: int, content_hash: str = "h") -> NewPage:
    return NewPage(content_hash=content_hash, spans=(PageSpan(turn_id, 0, end),), text_tokens=3)


def test_sqlite_store_implements_the_store_interface() -> None:
    with SQLiteStore() as store:
        assert isinstance(store, Store)


def test_a_new_file_gets_wal_and_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    SQLiteStore(path).close()  # reopening does not add a second version row
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (1,)


def test_a_store_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with SQLiteStore(path) as store:
        store.add_turn("t", "user", "keep me", None, 3)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="upgrade optical-memory"):
        SQLiteStore(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT content FROM turns").fetchall() == [("keep me",)]


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(path)
    assert path.read_bytes() == b"these are my notes, not a database" * 100


def test_paths_that_cannot_hold_a_store_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteStore(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore(tmp_path / "missing" / "m.db")


def test_turns_round_trip_with_every_character_and_timestamp(tmp_path: Path) -> None:
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    text = "nul\x00 bell\x07 rtl \u202eשלום emoji 👩‍👩‍👧 crlf\r\n"
    with SQLiteStore(tmp_path / "m.db") as store:
        added = store.add_turn("t", "Zoë", text, stamp, 9)
    with SQLiteStore(tmp_path / "m.db") as store:
        (turn,) = store.get_turns("t", [added.id or 0])
        assert (turn.role, turn.content, turn.timestamp) == ("Zoë", text, stamp)
        assert store.turn_text_tokens("t", [added.id or 0]) == {added.id: 9}


def test_turn_queries_stay_inside_their_thread() -> None:
    with SQLiteStore() as store:
        a = [store.add_turn("a", "user", f"a{i}", None, 1).id or 0 for i in range(5)]
        b = [store.add_turn("b", "user", f"b{i}", None, 1).id or 0 for i in range(5)]
        assert [t.content for t in store.newest_turns("a", 2)] == ["a3", "a4"]
        assert [t.content for t in store.turns_between("a", a[1], a[4])] == ["a2", "a3"]
        assert store.get_turns("a", b) == []
        assert [t.content for t in store.iter_turns("b", newest_first=True)] == [
            f"b{i}" for i in range(4, -1, -1)
        ]
        assert store.count_turns("a") == 5
        assert store.sum_text_tokens("a") == 5 and store.sum_text_tokens("none") == 0
        assert store.thread_ids() == ["a", "b"]


def test_iter_turns_streams_past_one_batch() -> None:
    with SQLiteStore() as store:
        for i in range(1203):
            store.add_turn("t", "user", str(i), None, 1)
        assert [t.content for t in store.iter_turns("t")] == [str(i) for i in range(1203)]
        ids = [t.id or 0 for t in store.iter_turns("t")]
        assert len(store.get_turns("t", ids)) == 1203  # more ids than one IN (...) holds


def test_pages_append_in_order_and_a_stale_writer_is_turned_away() -> None:
    with SQLiteStore() as store:
        turn = store.add_turn("t", "user", "x" * 10, None, 1).id or 0
        assert store.append_pages("t", -1, [page(turn, 5), page(turn, 10)])
        assert not store.append_pages("t", -1, [page(turn, 5)])  # someone froze pages first
        assert store.append_pages("t", 1, [page(turn, 10, "later")])
        records = store.pages("t")
        assert [r.seq for r in records] == [0, 1, 2]
        assert [r.content_hash for r in store.pages("t", after_seq=1)] == ["later"]
        assert records[0].spans == (PageSpan(turn, 0, 5),)
        assert records[0].turn_ids == [turn]
        assert store.page("t", records[0].id) == records[0]
        assert store.page("other", records[0].id) is None
        assert store.pages("other") == []


def test_the_image_cache_keeps_the_first_render_per_key() -> None:
    with SQLiteStore() as store:
        assert store.image_size("h", "tiny", "pil/v1") is None
        store.put_image("h", "tiny", "pil/v1", 512, 512, b"first")
        store.put_image("h", "tiny", "pil/v1", 512, 512, b"second")
        assert store.get_image("h", "tiny", "pil/v1") == b"first"
        assert store.image_size("h", "tiny", "pil/v1") == (512, 512)
        assert store.get_image("h", "tiny", "pil/v2") is None  # other renderer settings
        assert store.get_image("h", "base", "pil/v1") is None
        assert store.count_images() == 1


def test_blobs_are_keyed_by_namespace_hash_mode_and_identity() -> None:
    with SQLiteStore() as store:
        store.put_blob("visual-tokens", "h", "base", "enc-1", b"\x00\x01")
        assert store.get_blob("visual-tokens", "h", "base", "enc-1") == b"\x00\x01"
        assert store.get_blob("visual-tokens", "h", "base", "enc-2") is None
        assert store.get_blob("visual-tokens", "h", "tiny", "enc-1") is None
        assert store.get_blob("other", "h", "base", "enc-1") is None
        store.put_blob("visual-tokens", "h", "base", "enc-1", b"new")
        assert store.get_blob("visual-tokens", "h", "base", "enc-1") == b"new"
        with pytest.raises(TypeError, match="bytes"):
            store.put_blob("visual-tokens", "h", "base", "enc-1", "text")  # type: ignore[arg-type]


def test_a_closed_store_says_so() -> None:
    store = SQLiteStore()
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.count_turns("t")


# --- turn numbers and the search index ----------------------------------------------------------

_VERSION_1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, timestamp TEXT, text_tokens INTEGER NOT NULL
);
INSERT INTO turns (thread_id, role, content, timestamp, text_tokens) VALUES
    ('a', 'user', 'my locker code is pine-653', NULL, 5),
    ('b', 'user', 'another thread entirely', NULL, 3),
    ('a', 'assistant', 'noted, the locker', NULL, 3);
"""


def test_a_version_1_file_is_numbered_and_indexed_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:
        raw.executescript(_VERSION_1)
    with SQLiteStore(path) as store:
        assert [(t.content, t.number) for t in store.iter_turns("a")] == [
            ("my locker code is pine-653", 1),
            ("noted, the locker", 2),
        ]
        assert store.add_turn("a", "user", "and the bike lock?", None, 3).number == 3
        assert store.add_turn("b", "user", "hello", None, 1).number == 2
        found = store.search_turns("a", TextQuery(words=("locker",)), 10)
        assert {m.turn.number for m in found[:2]} == {1, 2}  # 3 only as their neighbour
        coded = store.search_turns("a", TextQuery(words=(), phrases=(("pine", "653"),)), 10)
        assert coded[0].turn.number == 1 and coded[0].phrase_match
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_search_sees_every_turn_once_added_and_only_its_thread(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "m.db") as store:
        for n in range(30):
            store.add_turn("a", "user", f"note {n} about the weather", None, 3)
        store.add_turn("a", "user", "the ferry leaves at noon", None, 3)
        store.add_turn("b", "user", "the ferry is late", None, 3)
        (hit, *_) = store.search_turns("a", TextQuery(words=("ferry",)), 5)
        assert hit.turn.number == 31
        assert all(m.turn.content != "the ferry is late" for m in _all(store, "a", "ferry"))
        snippet = store.snippets("a", TextQuery(words=("ferry",)), [hit.turn.id or 0])
        assert snippet == {hit.turn.id: "the **ferry** leaves at noon"}
        # The index matches what the turns table holds, row for row (FTS5's own check).
        store._db.execute("INSERT INTO turn_index(turn_index) VALUES ('integrity-check')")


def _all(store: SQLiteStore, thread: str, word: str) -> list:
    return store.search_turns(thread, TextQuery(words=(word,)), 1000)


def test_hostile_query_text_is_matched_as_words_never_as_syntax() -> None:
    with SQLiteStore() as store:
        store.add_turn("a", "user", 'he said "NEAR(x y)" AND OR NOT * ^', None, 3)
        for words in (('"',), ("NEAR(x",), ("AND",), ("*",), ("col:umn",)):
            store.search_turns("a", TextQuery(words=words), 5)  # no FTS5 syntax error
        assert store.search_turns("a", TextQuery(words=("NEAR",)), 5)[0].turn.number == 1
