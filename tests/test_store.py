"""Stores: schema, durability settings, threads, frozen pages and the two caches.

Every test taking ``store_location`` runs on a new SQLite file and on a new database of the real
PostgreSQL server the test session starts."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from optical_memory import OpticalMemory
from optical_memory.experiments.synthetic import generate_dialogue
from optical_memory.store import (
    SCHEMA_VERSION,
    BlobOwner,
    NewPage,
    PageSpan,
    SQLiteStore,
    Store,
    StoreError,
    TextQuery,
    open_store,
)
from optical_memory.store.ranking import Ranking


def page(turn_id: int, end: int, content_hash: str = "h") -> NewPage:
    return NewPage(content_hash=content_hash, spans=(PageSpan(turn_id, 0, end),), text_tokens=3)


def test_both_stores_implement_the_store_interface(store_location: str) -> None:
    with open_store(store_location) as store:
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


def test_turns_round_trip_with_every_character_and_timestamp(store_location: str) -> None:
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    text = "nul\x00 bell\x07 rtl \u202eשלום emoji 👩‍👩‍👧 crlf\r\n"
    with open_store(store_location) as store:
        added = store.add_turn("t", "Zoë\x00", text, stamp, 9)
    with open_store(store_location) as store:
        (turn,) = store.get_turns("t", [added.id or 0])
        assert (turn.role, turn.content, turn.timestamp) == ("Zoë\x00", text, stamp)
        assert store.turn_text_tokens("t", [added.id or 0]) == {added.id: 9}


def test_turn_queries_stay_inside_their_thread(store_location: str) -> None:
    with open_store(store_location) as store:
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


def test_iter_turns_streams_past_one_batch(store_location: str) -> None:
    with open_store(store_location) as store:
        for i in range(1203):
            store.add_turn("t", "user", str(i), None, 1)
        assert [t.content for t in store.iter_turns("t")] == [str(i) for i in range(1203)]
        ids = [t.id or 0 for t in store.iter_turns("t")]
        assert len(store.get_turns("t", ids)) == 1203  # more ids than one IN (...) holds


def test_ids_and_numbers_past_what_a_column_holds_find_nothing_on_both_stores(
    store_location: str,
) -> None:
    """A page id past 64 bits or a turn number past 32 bits (e.g. from a model's tool call) is
    a miss on either store, never a driver's overflow error."""
    with open_store(store_location) as store:
        turn = store.add_turn("t", "user", "only turn", None, 7)
        assert store.append_pages("t", -1, [page(turn.id or 0, 4)])
        assert store.page("t", 2**70) is None and store.page("t", -(2**70)) is None
        assert [t.content for t in store.turns_by_number("t", -(2**40), 2**40)] == ["only turn"]
        assert store.turns_by_number("t", 2**40, 2**41) == []
        assert store.turn_text_tokens("t", [turn.id or 0]) == {turn.id: 7}
        assert store.prune_renders("t", -(2**40), 2**40, ["tiny"]) == 0


def test_pages_append_in_order_and_a_stale_writer_is_turned_away(store_location: str) -> None:
    with open_store(store_location) as store:
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


def test_the_image_cache_keeps_the_first_render_per_key(store_location: str) -> None:
    with open_store(store_location) as store:
        assert store.image_size("h", "tiny", "pil/v1") is None
        store.put_image("h", "tiny", "pil/v1", 512, 512, b"first")
        store.put_image("h", "tiny", "pil/v1", 512, 512, b"second")
        assert store.get_image("h", "tiny", "pil/v1") == b"first"
        assert store.image_size("h", "tiny", "pil/v1") == (512, 512)
        assert store.get_image("h", "tiny", "pil/v2") is None  # other renderer settings
        assert store.get_image("h", "base", "pil/v1") is None
        assert store.count_images() == 1


def test_blobs_are_keyed_by_namespace_hash_mode_and_identity(store_location: str) -> None:
    with open_store(store_location) as store:
        store.put_blob("visual-tokens", "h", "base", "enc-1", b"\x00\x01")
        assert store.get_blob("visual-tokens", "h", "base", "enc-1") == b"\x00\x01"
        assert store.get_blob("visual-tokens", "h", "base", "enc-2") is None
        assert store.get_blob("visual-tokens", "h", "tiny", "enc-1") is None
        assert store.get_blob("other", "h", "base", "enc-1") is None
        store.put_blob("visual-tokens", "h", "base", "enc-1", b"new")
        assert store.get_blob("visual-tokens", "h", "base", "enc-1") == b"new"
        with pytest.raises(TypeError, match="bytes"):
            store.put_blob("visual-tokens", "h", "base", "enc-1", "text")  # type: ignore[arg-type]


def test_a_closed_store_says_so(store_location: str) -> None:
    store = open_store(store_location)
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


# --- versions, other programs' databases, sharing and deleting (both stores) -------------------


def raw_execute(location: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    """Run SQL on a store's database behind its back (``{s}``: where its tables live)."""
    if location.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as db:
            cursor = db.execute(sql.replace("{s}", "optical_memory.").replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
    with sqlite3.connect(location) as db:
        return db.execute(sql.replace("{s}", ""), params).fetchall()


def test_a_newer_or_unreadable_schema_version_is_refused_untouched(store_location: str) -> None:
    with open_store(store_location) as store:
        store.add_turn("t", "user", "keep me", None, 3)
    postgres = store_location.startswith("postgresql://")
    damages: list[tuple[str, tuple[object, ...], str]] = [
        ("UPDATE {s}schema_version SET version = ?", (SCHEMA_VERSION + 1,), "upgrade"),
        ("DELETE FROM {s}schema_version", (), "unreadable schema version \\(no row"),
    ]
    if not postgres:  # SQLite columns take any value
        damages.append(("UPDATE {s}schema_version SET version = ?", ("two",), "'two'"))
    for sql, params, message in damages:
        raw_execute(store_location, sql, params)
        # A newer schema may rename anything: the version is read before any other table.
        raw_execute(store_location, "ALTER TABLE {s}turns RENAME COLUMN thread_id TO thread")
        with pytest.raises(StoreError, match=message):
            open_store(store_location)
        raw_execute(store_location, "ALTER TABLE {s}turns RENAME COLUMN thread TO thread_id")
        raw_execute(store_location, "DELETE FROM {s}schema_version")
        raw_execute(store_location, "INSERT INTO {s}schema_version VALUES (?)", (SCHEMA_VERSION,))
    with open_store(store_location) as store:
        assert [t.content for t in store.iter_turns("t")] == ["keep me"]


def test_sqlite_refuses_a_newer_store_without_creating_tables_or_wal(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        raw.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
        raw.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY, thread TEXT)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    assert not (tmp_path / "future.db-wal").exists()


def test_another_programs_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        raw.execute("INSERT INTO invoices VALUES (1, 9.5)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"not an optical-memory store.*invoices"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_postgres_shares_a_database_with_other_tables_and_refuses_a_foreign_schema(
    postgres_server,
) -> None:
    dsn = postgres_server.new_database()
    # Another application (say LangGraph's checkpointer) already keeps tables here.
    raw_execute(dsn, "CREATE TABLE checkpoints (thread_id TEXT, data BYTEA)")
    raw_execute(dsn, "CREATE SCHEMA elsewhere")
    raw_execute(dsn, "CREATE TABLE elsewhere.turns (id INTEGER)")
    with open_store(dsn) as store:
        store.add_turn("t", "user", "hello", None, 1)
    assert raw_execute(dsn, "SELECT COUNT(*) FROM checkpoints") == [(0,)]
    from optical_memory.store.postgres import PostgresStore

    with pytest.raises(StoreError, match=r"not an optical-memory store.*turns"):
        PostgresStore(dsn, schema="elsewhere")
    assert raw_execute(dsn, "SELECT COUNT(*) FROM elsewhere.turns") == [(0,)]
    tables = raw_execute(
        dsn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'elsewhere'"
    )
    assert tables == [("turns",)]


def test_postgres_workers_starting_together_create_the_schema_once(postgres_server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    dsn = postgres_server.new_database()
    with ThreadPoolExecutor(8) as pool:
        stores = list(pool.map(lambda _: open_store(dsn), range(8)))
    for store in stores:
        store.close()
    assert raw_execute(dsn, "SELECT version FROM {s}schema_version") == [(SCHEMA_VERSION,)]


def test_an_unreachable_postgres_server_says_what_to_do(postgres_server) -> None:
    from optical_memory.store import StoreUnavailableError

    closed = f"postgresql://someone:secret@127.0.0.1:{postgres_server.port + 1}/db"
    with pytest.raises(StoreUnavailableError, match="start the server") as raised:
        open_store(closed)
    assert "secret" not in str(raised.value)  # the password is never printed


def test_pruning_and_deleting_keep_what_another_thread_shares(store_location: str) -> None:
    with open_store(store_location) as store:
        a = store.add_turn("a", "user", "alpha", None, 1).id or 0
        b = store.add_turn("b", "user", "beta", None, 1).id or 0
        store.append_pages("a", -1, [page(a, 5, "only-a"), page(a, 5, "shared")])
        store.append_pages("b", -1, [page(b, 4, "shared")])
        for content_hash in ("only-a", "shared"):
            for mode in ("gundam", "tiny"):
                store.put_image(content_hash, mode, "pil", 1, 1, b"png")
                store.put_blob("visual-tokens", content_hash, mode, "enc", b"v")
        store.put_blob("message-ids", "a", "", "m1", b"1", owner=BlobOwner.thread("a"))
        store.put_blob("message-ids", "b", "", "m1", b"2", owner=BlobOwner.thread("b"))
        # A model's learnt costs keyed by a name that is also a thread id: not the thread's.
        store.put_blob("image-costs", "a", "anthropic", "512x512", b"cost")
        store.put_blob("learnt", "a", "", "k", b"model", owner=BlobOwner.model())
        assert store.prune_renders("a", 0, 1, ["gundam"]) == 2  # only-a's image and blob
        assert store.get_image("only-a", "gundam", "pil") is None
        assert store.get_blob("visual-tokens", "only-a", "gundam", "enc") is None
        assert store.get_image("only-a", "tiny", "pil") == b"png"
        assert store.get_image("shared", "gundam", "pil") == b"png"
        assert store.delete_thread("a") == 1
        assert store.thread_ids() == ["b"]
        assert store.pages("a") == [] and store.count_turns("a") == 0
        assert store.get_image("only-a", "tiny", "pil") is None
        assert store.get_image("shared", "tiny", "pil") == b"png"
        assert store.get_blob("visual-tokens", "shared", "tiny", "enc") == b"v"
        assert store.get_blob("message-ids", "a", "", "m1") is None
        assert store.get_blob("message-ids", "b", "", "m1") == b"2"
        assert store.get_blob("image-costs", "a", "anthropic", "512x512") == b"cost"
        assert store.get_blob("learnt", "a", "", "k") == b"model"
        assert [t.content for t in store.iter_turns("b")] == ["beta"]
        assert store.delete_thread("a") == 0  # deleting twice is harmless


def test_a_deleted_thread_leaves_no_byte_of_its_text(
    store_location: str, request: pytest.FixtureRequest
) -> None:
    """SQLite: nothing in the file or its write-ahead log once delete_thread() returns.
    PostgreSQL: nothing in the table files (heaps, TOAST, indexes, read from disk) after
    delete_thread() and the step the deployment guide names, vacuum_full()."""
    secret = b"PLANTED-SECRET-7f3a"
    with open_store(store_location) as store:
        for i in range(300):
            content = f"{secret.decode()} number {i} " + "pad " * 50
            store.add_turn("gone", "user", content, None, 60)
            store.add_turn("kept", "user", f"kept number {i}", None, 3)
        store.append_pages("gone", -1, [page(store.newest_turns("gone", 1)[0].id or 0, 9, "p")])
        store.put_image("p", "tiny", "pil", 1, 1, secret)  # derived data of its page
        store.put_blob("visual-tokens", "p", "tiny", "enc", secret)
        store.put_blob("turn-images", "gone", "", "1/1", secret * 3)
        store.delete_thread("gone")
        assert store.count_turns("kept") == 300
        if store_location.startswith("postgresql://"):
            server = request.getfixturevalue("postgres_server")
            # The delete is logical: the dead rows stay in the files until they are rewritten.
            assert secret.lower() in server.table_files(store_location).lower()
            store.vacuum_full()  # type: ignore[attr-defined]
            data = server.table_files(store_location)
    if not store_location.startswith("postgresql://"):
        data = b"".join(
            Path(store_location + suffix).read_bytes()
            for suffix in ("", "-wal")
            if Path(store_location + suffix).exists()
        )
    assert b"kept number 299" in data
    assert secret.lower() not in data.lower()  # the search index keeps words lower-cased


def test_postgres_refusals_are_store_errors_and_an_uncached_render_only_a_miss(
    postgres_server,
) -> None:
    from optical_memory import OpticalMemory

    dsn = postgres_server.new_database()
    with OpticalMemory(dsn) as memory:
        for i in range(30):
            memory.add("user", f"turn {i} " + " ".join(f"word{i}x{k}" for k in range(120)))
    # A role that may read and add turns and pages but not write the render cache.
    raw_execute(dsn, "CREATE ROLE limited LOGIN")
    raw_execute(dsn, "GRANT USAGE ON SCHEMA optical_memory TO limited")
    raw_execute(dsn, "GRANT SELECT ON ALL TABLES IN SCHEMA optical_memory TO limited")
    raw_execute(dsn, "GRANT INSERT ON optical_memory.turns, optical_memory.pages TO limited")
    raw_execute(dsn, "GRANT DELETE ON optical_memory.page_images, optical_memory.blobs TO limited")
    limited = dsn.replace("postgres@", "limited@")
    with OpticalMemory(limited) as memory:
        memory.add("user", "one more")
        context = memory.context()  # renders, cannot cache them, still answers
        assert context.pages and memory.store.count_images() == 0
        with pytest.raises(StoreError, match=r"refused the call.*permission denied"):
            memory.store.put_blob("visual-tokens", "h", "tiny", "enc", b"x")


# --- numbers, search and recalls (both stores) --------------------------------------------------


def test_numbers_search_snippets_and_recalls_on_both_stores(store_location: str) -> None:
    with open_store(store_location) as store:
        for n in range(30):
            store.add_turn("a", "user", f"note {n} about the weather", None, 3)
        ferry = store.add_turn("a", "user", "the ferry leaves at noon, code pine-653", None, 3)
        store.add_turn("b", "user", "the ferry is late", None, 3)
        assert (ferry.number, store.add_turn("b", "user", "x", None, 1).number) == (31, 2)
        assert [t.number for t in store.turns_by_number("a", 30, 40)] == [30, 31]
        # A turn also scores by the three turns after it (a question by its answer), nearer ones
        # weighing more.
        ranking = Ranking(neighbours=((1, 0.6), (2, 0.4), (3, 0.2)))
        (hit, *rest) = store.search_turns("a", TextQuery(words=("ferries",)), 5, ranking)
        assert (hit.turn, hit.phrase_match) == (ferry, False)  # stemmed, thread "a" only
        assert [m.turn.number for m in rest] == [30, 29, 28]  # its neighbours, nearest first
        assert hit.score > rest[0].score
        coded = store.search_turns("a", TextQuery(words=(), phrases=(("pine", "653"),)), 5)
        assert [(m.turn.number, m.phrase_match) for m in coded[:1]] == [(31, True)]
        snippet = store.snippets("a", TextQuery(words=("ferry",)), [ferry.id or 0])
        assert snippet == {ferry.id: "the **ferry** leaves at noon, code pine-653"}
        for words in (('"',), ("NEAR(x",), ("AND",), ("*",), ("col:umn",), ("\x00",), ("",)):
            store.search_turns("a", TextQuery(words=words), 5)  # never a syntax error
        pages = [page(ferry.id or 0, 5, "h1"), page(ferry.id or 0, 9, "h2")]
        assert store.append_pages("a", -1, pages)
        first, second = (p.id for p in store.pages("a"))
        store.record_recall("a", [first, second], 4)
        store.record_recall("a", [second], 6)
        assert store.recalls("a") == {first: 4, second: 6} and store.recalls("b") == {}
        assert store.delete_thread("a") == 31
        assert store.search_turns("a", TextQuery(words=("ferry", "weather")), 50) == []
        assert store.recalls("a") == {}
        kept = store.search_turns("b", TextQuery(("ferry",)), 5)
        assert [m.turn.content for m in kept] == ["the ferry is late", "x"]  # "x" as neighbour
        assert store.add_turn("a", "user", "again", None, 1).number == 1  # numbers start over


def test_a_rare_word_outranks_a_common_one_on_both_stores(store_location: str) -> None:
    # BM25 on both stores: a word most turns hold says little about a turn, a rare one much.
    with open_store(store_location) as store:
        for n in range(20):
            store.add_turn("a", "user", f"coffee break number {n}", None, 3)
        for filler in range(4):
            store.add_turn("a", "user", f"filler {filler}", None, 1)
        rare = store.add_turn("a", "user", "we saw a zebra", None, 3)
        hits = store.search_turns("a", TextQuery(words=("coffee", "zebra")), 50)
        assert hits[0].turn == rare  # though each coffee turn also has coffee neighbours


def test_a_version_1_postgres_schema_is_numbered_and_indexed_when_opened(postgres_server) -> None:
    dsn = postgres_server.new_database()
    raw_execute(dsn, "CREATE SCHEMA optical_memory")
    raw_execute(dsn, "CREATE TABLE {s}schema_version (version INTEGER NOT NULL)")
    raw_execute(dsn, "INSERT INTO {s}schema_version VALUES (1)")
    raw_execute(
        dsn,
        "CREATE TABLE {s}turns (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "thread_id TEXT NOT NULL, role BYTEA NOT NULL, content BYTEA NOT NULL, timestamp TEXT, "
        "text_tokens INTEGER NOT NULL)",
    )
    for thread, content in (("a", "my locker code is pine-653"), ("b", "x"), ("a", "noted")):
        raw_execute(
            dsn,
            "INSERT INTO {s}turns (thread_id, role, content, text_tokens) VALUES (?, ?, ?, 1)",
            (thread, b"user", content.encode()),
        )
    with open_store(dsn) as store:
        assert [(t.content, t.number) for t in store.iter_turns("a")] == [
            ("my locker code is pine-653", 1),
            ("noted", 2),
        ]
        assert store.add_turn("b", "user", "hello", None, 1).number == 2
        coded = store.search_turns("a", TextQuery(words=(), phrases=(("pine", "653"),)), 10)
        assert [(m.turn.number, m.phrase_match) for m in coded] == [(1, True), (2, False)]
    assert raw_execute(dsn, "SELECT version FROM {s}schema_version") == [(SCHEMA_VERSION,)]


def test_postgres_turns_with_their_search_index_take_under_four_times_their_text(
    postgres_server,
) -> None:
    # A search index with a pending list would hold new turns' words uncompressed (over 4x).
    dialogue = generate_dialogue(600).turns
    with open_store(postgres_server.new_database()) as store:
        empty = store.size_bytes()
        text = 0
        for i in range(1000):
            role, content = dialogue[i % len(dialogue)]
            text += len(content.encode())
            store.add_turn("t", role, content, None, 60)
        word = dialogue[-1][1].split()[-1]
        assert store.search_turns("t", TextQuery(words=(word,)), 5)  # indexed
        grown = store.size_bytes() - empty
        assert grown <= 4 * text, (grown, text)


#: A store written by optical-memory with schema version 3 (each turn indexed with six
#: neighbours' text): thread "a" of 41 turns, turn i (1 to 40) saying "Turn i of thread a talks
#: about the WORD and number 999+i" with WORD cycling through harbour, violin, quartz, saffron,
#: glacier, lantern, meadow, cobalt, then turn 41 "The parcel code is pine-653 and it ships on
#: Friday."; thread "b" of 12 turns, each "Thread b turn i: violin violin lessons.".
VERSION_3_FILE = Path(__file__).parent / "data" / "store_v3.db"


def test_a_version_3_store_file_opens_with_an_index_of_each_turns_own_text(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(VERSION_3_FILE, path)
    with sqlite3.connect(path) as raw:
        before = index_bytes(raw)
    with OpticalMemory(path, thread_id="a") as memory:
        assert memory.store.count_turns("a") == 41
        assert memory.store.count_turns("b") == 12
        # The five turns of "a" naming the violin come first, whatever thread b holds.
        hits = memory.search("violin", limit=5)
        assert sorted(hit.number for hit in hits if hit.own_match) == [2, 10, 18, 26, 34]
        assert memory.search("pine-653")[0].number == 41
        assert memory.search("number 1020")[0].number == 21
        with sqlite3.connect(path) as raw:
            assert index_bytes(raw) < before / 3  # the neighbours' text is gone from it
        memory.add("user", "A new turn about the violin recital.")
        assert memory.search("recital")[0].number == 42
        assert memory.delete_thread() == 42
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        columns = [row[1] for row in raw.execute("PRAGMA table_info(turn_index)")]
        assert columns == ["content"]
        views = raw.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall()
        assert views == []
    with OpticalMemory(path, thread_id="b") as memory:
        assert len(memory.search("violin lessons", limit=20)) == 12


def index_bytes(raw: sqlite3.Connection) -> int:
    """Bytes of the SQLite store's full-text index (its FTS5 segments)."""
    return int(raw.execute("SELECT sum(length(block)) FROM turn_index_data").fetchone()[0])
