"""Where memory lives: turns, frozen pages, rendered page images and other derived blobs.

:class:`Store` is the one small interface the memory talks to; :class:`SQLiteStore` implements
it with the standard library's ``sqlite3`` (one file, or RAM with ``path=None``). Going beyond
one machine means writing another ``Store`` (a server database), nothing else.

Everything is scoped by ``thread_id`` except the two caches, which are keyed by a page's
*content hash*: a hash of exactly what is printed on the page, so identical content renders to
identical pixels and may share a cache entry without revealing anything another thread did not
already hold.

Schema (version 2)::

    schema_version(version)
    turns(id, thread_id, number, role, content, timestamp, text_tokens)  -- append only
    turn_index                       -- FTS5 over each turn read with its neighbours
    pages(id, thread_id, seq, content_hash, spans, text_tokens)      -- frozen once written
    page_images(content_hash, mode, renderer, width, height, png)    -- render cache
    blobs(namespace, content_hash, mode, identity, data)             -- e.g. encoded visual tokens
    recalls(thread_id, page_id, page_count)                          -- pages read back exactly

``number`` counts a thread's turns from 1: the number captions, search hits and page labels
show. A version-1 file is upgraded in place when opened (numbers assigned, index built).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

from optical_memory.turns import Turn

SCHEMA_VERSION = 2
#: Characters of each neighbouring turn that the search index reads with a turn.
NEIGHBOUR_CHARS = 2000
#: Words in a search hit's snippet.
SNIPPET_WORDS = 24
#: The neighbours a turn is indexed with (offsets in turn numbers) and their weights in the
#: ranking, after the turn's own text (weight 1). A question's words are often split between a
#: turn and the one it answers; measured on LoCoMo (``optical-memory experiment``).
NEIGHBOURS: tuple[tuple[int, float], ...] = (
    (-1, 0.8),
    (-2, 0.4),
    (-3, 0.2),
    (1, 0.4),
    (2, 0.2),
    (3, 0.1),
)
#: Seconds a writer waits for another process's lock before SQLite gives up.
BUSY_TIMEOUT_S = 60.0


class StoreError(RuntimeError):
    """The store cannot be opened or used as asked; the message says what to do."""


@dataclass(frozen=True)
class PageSpan:
    """Characters ``content[start:end]`` of the stored turn ``turn_id`` are printed on a page."""

    turn_id: int
    start: int
    end: int


@dataclass(frozen=True)
class PageRecord:
    """A frozen page: which pieces of which turns it holds, in order.

    ``seq`` counts the thread's pages from 0 (oldest); ``content_hash`` identifies what is printed
    on it (see :func:`optical_memory.memory.page_content_hash`); ``text_tokens`` is what the
    page's text would cost as text.
    """

    id: int
    thread_id: str
    seq: int
    content_hash: str
    spans: tuple[PageSpan, ...]
    text_tokens: int

    @cached_property
    def turn_ids(self) -> list[int]:
        """Ids of the turns printed (wholly or in part) on this page, oldest first."""
        ids: list[int] = []
        for span in self.spans:
            if not ids or ids[-1] != span.turn_id:
                ids.append(span.turn_id)
        return ids


@dataclass(frozen=True)
class TextQuery:
    """What a full-text search asks the store for, independent of the backend's syntax.

    ``words``: any of them may match (stemmed, case-folded); ``phrases``: word sequences
    that match where they appear in this order (quoted phrases, codes such as ``pine-653``
    split at punctuation); a turn matching any word or phrase is found.
    """

    words: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class TurnMatch:
    """One turn a full-text search found: ``score`` (higher is better) is its text relevance,
    read with its neighbours; ``phrase_match``: the turn's own text holds one of the query's
    phrases."""

    turn: Turn
    score: float
    phrase_match: bool


@dataclass(frozen=True)
class NewPage:
    """A page about to be frozen (no id or seq yet)."""

    content_hash: str
    spans: tuple[PageSpan, ...]
    text_tokens: int


@runtime_checkable
class Store(Protocol):
    """What :class:`~optical_memory.memory.OpticalMemory` needs from a store.

    Turns are append-only and ordered by ``id`` within a thread; pages are appended in ``seq``
    order and never change. Every method is atomic on its own.
    """

    def add_turn(
        self,
        thread_id: str,
        role: str,
        content: str,
        timestamp: datetime | None,
        text_tokens: int,
    ) -> Turn:
        """Append one turn durably (committed before it returns) and return it with its id."""
        ...

    def turn_text_tokens(self, thread_id: str, turn_ids: Sequence[int]) -> dict[int, int]: ...

    def get_turns(self, thread_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """The thread's turns with these ids, in id order; ids of other threads are skipped."""
        ...

    def turns_by_number(self, thread_id: str, first: int, last: int) -> list[Turn]:
        """The thread's turns numbered ``first`` to ``last`` (inclusive), in order."""
        ...

    def search_turns(self, thread_id: str, query: TextQuery, limit: int) -> list[TurnMatch]:
        """Up to ``limit`` of the thread's turns (forgotten ones too) matching ``query``, best
        first by text relevance (each turn read with its neighbours, :data:`NEIGHBOURS`). The
        index is kept in the same transaction as :meth:`add_turn`."""
        ...

    def snippets(self, thread_id: str, query: TextQuery, turn_ids: Sequence[int]) -> dict[int, str]:
        """Turn id → an excerpt of that turn's text around what matches ``query``, matched
        words in ``**`` (about :data:`SNIPPET_WORDS` words)."""
        ...

    def record_recall(self, thread_id: str, page_ids: Sequence[int], page_count: int) -> None:
        """Note that these pages were read back exactly while the thread had ``page_count``
        pages (for rehearsal)."""
        ...

    def recalls(self, thread_id: str) -> dict[int, int]:
        """Each recalled page id → the thread's page count at its latest recall."""
        ...

    def newest_turns(self, thread_id: str, count: int) -> list[Turn]:
        """The ``count`` newest turns, oldest first."""
        ...

    def turns_between(self, thread_id: str, after_id: int, before_id: int | None) -> list[Turn]:
        """Turns with ``after_id < id < before_id`` (no upper bound when None), oldest first."""
        ...

    def iter_turns(self, thread_id: str, *, newest_first: bool = False) -> Iterator[Turn]: ...

    def count_turns(self, thread_id: str) -> int: ...

    def sum_text_tokens(self, thread_id: str) -> int:
        """Text tokens of all the thread's turns, as stored with each turn."""
        ...

    def pages(self, thread_id: str, *, after_seq: int = -1) -> list[PageRecord]:
        """The thread's pages with ``seq > after_seq``, oldest first."""
        ...

    def page(self, thread_id: str, page_id: int) -> PageRecord | None: ...

    def append_pages(self, thread_id: str, after_seq: int, pages: Sequence[NewPage]) -> bool:
        """Append ``pages`` if the thread's newest page still has ``seq == after_seq``
        (``-1``: none); return False, writing nothing, if another writer got there first."""
        ...

    def image_size(self, content_hash: str, mode: str, renderer: str) -> tuple[int, int] | None:
        """``(width, height)`` of a cached render, or None when it has not been rendered."""
        ...

    def get_image(self, content_hash: str, mode: str, renderer: str) -> bytes | None: ...

    def put_image(
        self, content_hash: str, mode: str, renderer: str, width: int, height: int, png: bytes
    ) -> None:
        """Cache a render; a second put of the same key keeps the first."""
        ...

    def get_blob(self, namespace: str, content_hash: str, mode: str, identity: str) -> bytes | None:
        """A derived blob (e.g. namespace ``"visual-tokens"``, identity = encoder + weights)."""
        ...

    def put_blob(
        self, namespace: str, content_hash: str, mode: str, identity: str, data: bytes
    ) -> None: ...

    def count_images(self) -> int: ...

    def thread_ids(self) -> list[str]: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id   TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    timestamp   TEXT,
    text_tokens INTEGER NOT NULL,
    number      INTEGER
);
CREATE INDEX IF NOT EXISTS turns_by_thread ON turns (thread_id, id);
CREATE TABLE IF NOT EXISTS pages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id    TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    content_hash TEXT    NOT NULL,
    spans        TEXT    NOT NULL,
    text_tokens  INTEGER NOT NULL,
    UNIQUE (thread_id, seq)
);
CREATE TABLE IF NOT EXISTS page_images (
    content_hash TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    renderer     TEXT    NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    png          BLOB    NOT NULL,
    PRIMARY KEY (content_hash, mode, renderer)
);
CREATE TABLE IF NOT EXISTS blobs (
    namespace    TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    mode         TEXT NOT NULL,
    identity     TEXT NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (namespace, content_hash, mode, identity)
);
CREATE TABLE IF NOT EXISTS recalls (
    thread_id  TEXT    NOT NULL,
    page_id    INTEGER NOT NULL,
    page_count INTEGER NOT NULL,
    PRIMARY KEY (thread_id, page_id)
);
"""


def _search_schema() -> list[str]:
    """The turn numbers' index and the full-text index (an FTS5 table whose text is read from
    a view of each turn with its neighbours, so no text is stored twice)."""
    columns = [f"n{k}" for k in range(len(NEIGHBOURS))]
    joins = "\n".join(
        f"LEFT JOIN turns {c} ON {c}.thread_id = t.thread_id AND {c}.number = t.number + {offset}"
        for c, (offset, _) in zip(columns, NEIGHBOURS, strict=True)
    )
    selected = ", ".join(f"substr({c}.content, 1, {NEIGHBOUR_CHARS}) AS {c}" for c in columns)
    return [
        "CREATE UNIQUE INDEX IF NOT EXISTS turns_by_number ON turns (thread_id, number)",
        f"CREATE VIEW IF NOT EXISTS turn_documents AS SELECT t.id AS id, t.content AS content, "
        f"{selected} FROM turns t {joins}",
        f"CREATE VIRTUAL TABLE IF NOT EXISTS turn_index USING fts5(content, {', '.join(columns)}, "
        "content='turn_documents', content_rowid='id', tokenize='porter unicode61')",
    ]


#: How many turns before a new one gain it as a neighbour.
_REACH = max(offset for offset, _ in NEIGHBOURS)
_RANK_WEIGHTS = ", ".join(f"{weight:g}" for weight in (1.0, *(w for _, w in NEIGHBOURS)))
_DOCUMENT_COLUMNS = ", ".join(["content", *(f"n{k}" for k in range(len(NEIGHBOURS)))])


def _fts_match(query: TextQuery) -> tuple[str, list[str]]:
    """The FTS5 query matching any of ``query``'s words or phrases, and its phrases."""
    words = [_fts_phrase([word]) for word in query.words]
    phrases = [phrase for phrase in (_fts_phrase(p) for p in query.phrases) if phrase]
    return " OR ".join(term for term in (*words, *phrases) if term), phrases


def _fts_phrase(words: Sequence[str]) -> str:
    """An FTS5 phrase of ``words`` (each quoted, so no word is read as an operator)."""
    quoted = [word.replace('"', '""') for word in words if word]
    return f'"{" ".join(quoted)}"' if quoted else ""


class SQLiteStore:
    """:class:`Store` on one SQLite file (``path``) or in RAM (``path=None``).

    The file uses WAL journaling (readers never block the writer), a busy timeout of
    :data:`BUSY_TIMEOUT_S` so concurrent processes wait instead of failing, and one
    ``BEGIN IMMEDIATE`` transaction per write, so a turn is on disk once ``add_turn`` returns and
    a killed process loses nothing that was acknowledged. One instance may be shared by threads.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None and self.path.is_dir():
            raise StoreError(
                f"{self.path} is a directory: pass a file path such as {path}/memory.db"
            )
        if self.path is not None and not self.path.parent.exists():
            raise StoreError(
                f"folder {self.path.parent} does not exist: create it or pass another path"
            )
        self._lock = threading.RLock()
        target = ":memory:" if self.path is None else str(self.path)
        try:
            self._db = sqlite3.connect(
                target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode = WAL")
                # In WAL mode NORMAL keeps every commit through a process crash (SIGKILL); only
                # a power loss may drop the last commits, which FULL would also guard against.
                self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"cannot open {target} as an optical-memory store ({error}): "
                "pass a new file path or a store written by optical-memory"
            ) from error
        self._closed = False

    # --- plumbing ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            version = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this optical-memory "
                    f"understands ({SCHEMA_VERSION}): upgrade optical-memory"
                )
            columns = {row[1] for row in db.execute("PRAGMA table_info(turns)")}
            if "number" not in columns:  # version 1: number every thread's turns in id order
                db.execute("ALTER TABLE turns ADD COLUMN number INTEGER")
            if version is not None and version < 2:
                db.execute(
                    "UPDATE turns SET number = ranked.n FROM (SELECT id, ROW_NUMBER() OVER "
                    "(PARTITION BY thread_id ORDER BY id) AS n FROM turns) AS ranked "
                    "WHERE turns.id = ranked.id"
                )
            for statement in _search_schema():
                db.execute(statement)
            if version is not None and version < 2:
                db.execute("INSERT INTO turn_index(turn_index) VALUES ('rebuild')")
            if version is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    class _Transaction:
        def __init__(self, store: SQLiteStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            try:
                self.store._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return self.store._db

        def __exit__(self, kind: object, error: object, tb: object) -> None:
            try:
                self.store._db.execute("COMMIT" if kind is None else "ROLLBACK")
            finally:
                self.store._lock.release()

    def _write(self) -> SQLiteStore._Transaction:
        self._check_open()
        return SQLiteStore._Transaction(self)

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        self._check_open()
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def _check_open(self) -> None:
        if getattr(self, "_closed", False):
            raise StoreError("this store is closed: open a new OpticalMemory / SQLiteStore")

    @staticmethod
    def _turn(row: tuple) -> Turn:
        turn_id, role, content, stamp, number = row
        timestamp = datetime.fromisoformat(stamp) if stamp is not None else None
        return Turn(id=turn_id, role=role, content=content, timestamp=timestamp, number=number)

    @staticmethod
    def _page(row: tuple) -> PageRecord:
        page_id, thread_id, seq, content_hash, spans, text_tokens = row
        return PageRecord(
            id=page_id,
            thread_id=thread_id,
            seq=seq,
            content_hash=content_hash,
            spans=tuple(PageSpan(*span) for span in json.loads(spans)),
            text_tokens=text_tokens,
        )

    # --- turns ---------------------------------------------------------------------------------

    def add_turn(
        self,
        thread_id: str,
        role: str,
        content: str,
        timestamp: datetime | None,
        text_tokens: int,
    ) -> Turn:
        stamp = timestamp.isoformat() if timestamp is not None else None
        with self._write() as db:
            newest = db.execute(
                "SELECT MAX(number) FROM turns WHERE thread_id = ?", (thread_id,)
            ).fetchone()[0]
            number = (newest or 0) + 1
            # The turns before this one gain it as a neighbour: take their index entries out
            # with the text they were indexed with, and put them back with the new text.
            behind = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM turns WHERE thread_id = ? AND number >= ? AND number < ?",
                    (thread_id, number - _REACH, number),
                )
            ]
            self._unindex(db, behind)
            cursor = db.execute(
                "INSERT INTO turns (thread_id, number, role, content, timestamp, text_tokens) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (thread_id, number, role, content, stamp, text_tokens),
            )
            turn_id = cursor.lastrowid
            assert turn_id is not None
            self._index(db, [*behind, turn_id])
        return Turn(id=turn_id, role=role, content=content, timestamp=timestamp, number=number)

    @staticmethod
    def _unindex(db: sqlite3.Connection, turn_ids: Sequence[int]) -> None:
        for turn_id in turn_ids:
            db.execute(
                f"INSERT INTO turn_index(turn_index, rowid, {_DOCUMENT_COLUMNS}) "
                f"SELECT 'delete', id, {_DOCUMENT_COLUMNS} FROM turn_documents WHERE id = ?",
                (turn_id,),
            )

    @staticmethod
    def _index(db: sqlite3.Connection, turn_ids: Sequence[int]) -> None:
        for turn_id in turn_ids:
            db.execute(
                f"INSERT INTO turn_index(rowid, {_DOCUMENT_COLUMNS}) "
                f"SELECT id, {_DOCUMENT_COLUMNS} FROM turn_documents WHERE id = ?",
                (turn_id,),
            )

    _TURN_COLUMNS = "id, role, content, timestamp, number"

    def get_turns(self, thread_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        turns: list[Turn] = []
        ids = sorted(set(turn_ids))
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT {self._TURN_COLUMNS} FROM turns "
                f"WHERE thread_id = ? AND id IN ({marks}) ORDER BY id",
                [thread_id, *chunk],
            )
            turns.extend(self._turn(row) for row in rows)
        return turns

    def turn_text_tokens(self, thread_id: str, turn_ids: Sequence[int]) -> dict[int, int]:
        tokens: dict[int, int] = {}
        ids = sorted(set(turn_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT id, text_tokens FROM turns WHERE thread_id = ? AND id IN ({marks})",
                [thread_id, *chunk],
            )
            tokens.update(rows)
        return tokens

    def newest_turns(self, thread_id: str, count: int) -> list[Turn]:
        rows = self._read(
            f"SELECT {self._TURN_COLUMNS} FROM turns WHERE thread_id = ? ORDER BY id DESC LIMIT ?",
            (thread_id, count),
        )
        return [self._turn(row) for row in reversed(rows)]

    def turns_by_number(self, thread_id: str, first: int, last: int) -> list[Turn]:
        rows = self._read(
            f"SELECT {self._TURN_COLUMNS} FROM turns "
            "WHERE thread_id = ? AND number >= ? AND number <= ? ORDER BY number",
            (thread_id, first, last),
        )
        return [self._turn(row) for row in rows]

    def search_turns(self, thread_id: str, query: TextQuery, limit: int) -> list[TurnMatch]:
        match, phrases = _fts_match(query)
        if not match or limit < 1:
            return []
        t = "turn_index"
        ranked = self._read(
            f"SELECT turns.id, bm25({t}, {_RANK_WEIGHTS}) AS rank "
            f"FROM {t} JOIN turns ON turns.id = {t}.rowid "
            f"WHERE {t} MATCH ? AND turns.thread_id = ? ORDER BY rank LIMIT ?",
            (match, thread_id, limit),
        )
        if not ranked:
            return []
        ids = ",".join(str(int(turn_id)) for turn_id, _ in ranked)
        with_phrase: set[int] = set()
        if phrases:
            own = " OR ".join(f"content : {phrase}" for phrase in phrases)
            rows = self._read(
                f"SELECT rowid FROM {t} WHERE {t} MATCH ? AND rowid IN ({ids})", (own,)
            )
            with_phrase = {row[0] for row in rows}
        turns = {turn.id: turn for turn in self.get_turns(thread_id, [r[0] for r in ranked])}
        return [
            TurnMatch(turn=turns[turn_id], score=-float(rank), phrase_match=turn_id in with_phrase)
            for turn_id, rank in ranked
        ]

    def snippets(self, thread_id: str, query: TextQuery, turn_ids: Sequence[int]) -> dict[int, str]:
        match, _ = _fts_match(query)
        if not match or not turn_ids:
            return {}
        t = "turn_index"
        ids = ",".join(str(int(turn_id)) for turn_id in turn_ids)
        rows = self._read(
            f"SELECT turns.id, snippet({t}, 0, '**', '**', '…', {SNIPPET_WORDS}) "
            f"FROM {t} JOIN turns ON turns.id = {t}.rowid "
            f"WHERE {t} MATCH ? AND {t}.rowid IN ({ids}) AND turns.thread_id = ?",
            (match, thread_id),
        )
        return {int(turn_id): text for turn_id, text in rows}

    def turns_between(self, thread_id: str, after_id: int, before_id: int | None) -> list[Turn]:
        upper = before_id if before_id is not None else 2**63 - 1
        rows = self._read(
            f"SELECT {self._TURN_COLUMNS} FROM turns "
            "WHERE thread_id = ? AND id > ? AND id < ? ORDER BY id",
            (thread_id, after_id, upper),
        )
        return [self._turn(row) for row in rows]

    def iter_turns(self, thread_id: str, *, newest_first: bool = False) -> Iterator[Turn]:
        # Pages through the thread 500 turns at a time, so huge histories stream.
        last: int | None = None
        order, compare = ("DESC", "<") if newest_first else ("ASC", ">")
        while True:
            bound = "" if last is None else f"AND id {compare} ?"
            params: list[object] = [thread_id] + ([] if last is None else [last])
            rows = self._read(
                f"SELECT {self._TURN_COLUMNS} FROM turns WHERE thread_id = ? {bound} "
                f"ORDER BY id {order} LIMIT 500",
                params,
            )
            if not rows:
                return
            for row in rows:
                yield self._turn(row)
            last = rows[-1][0]

    def count_turns(self, thread_id: str) -> int:
        return int(self._read("SELECT COUNT(*) FROM turns WHERE thread_id = ?", (thread_id,))[0][0])

    def sum_text_tokens(self, thread_id: str) -> int:
        rows = self._read("SELECT SUM(text_tokens) FROM turns WHERE thread_id = ?", (thread_id,))
        return int(rows[0][0] or 0)

    # --- pages ---------------------------------------------------------------------------------

    _PAGE_COLUMNS = "id, thread_id, seq, content_hash, spans, text_tokens"

    def pages(self, thread_id: str, *, after_seq: int = -1) -> list[PageRecord]:
        rows = self._read(
            f"SELECT {self._PAGE_COLUMNS} FROM pages WHERE thread_id = ? AND seq > ? ORDER BY seq",
            (thread_id, after_seq),
        )
        return [self._page(row) for row in rows]

    def page(self, thread_id: str, page_id: int) -> PageRecord | None:
        rows = self._read(
            f"SELECT {self._PAGE_COLUMNS} FROM pages WHERE thread_id = ? AND id = ?",
            (thread_id, page_id),
        )
        return self._page(rows[0]) if rows else None

    def append_pages(self, thread_id: str, after_seq: int, pages: Sequence[NewPage]) -> bool:
        with self._write() as db:
            newest = db.execute(
                "SELECT MAX(seq) FROM pages WHERE thread_id = ?", (thread_id,)
            ).fetchone()[0]
            if (-1 if newest is None else newest) != after_seq:
                return False
            db.executemany(
                "INSERT INTO pages (thread_id, seq, content_hash, spans, text_tokens) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        thread_id,
                        after_seq + 1 + offset,
                        page.content_hash,
                        json.dumps([[s.turn_id, s.start, s.end] for s in page.spans]),
                        page.text_tokens,
                    )
                    for offset, page in enumerate(pages)
                ],
            )
        return True

    # --- caches --------------------------------------------------------------------------------

    def image_size(self, content_hash: str, mode: str, renderer: str) -> tuple[int, int] | None:
        rows = self._read(
            "SELECT width, height FROM page_images "
            "WHERE content_hash = ? AND mode = ? AND renderer = ?",
            (content_hash, mode, renderer),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def get_image(self, content_hash: str, mode: str, renderer: str) -> bytes | None:
        rows = self._read(
            "SELECT png FROM page_images WHERE content_hash = ? AND mode = ? AND renderer = ?",
            (content_hash, mode, renderer),
        )
        return bytes(rows[0][0]) if rows else None

    def put_image(
        self, content_hash: str, mode: str, renderer: str, width: int, height: int, png: bytes
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO page_images VALUES (?, ?, ?, ?, ?, ?)",
                (content_hash, mode, renderer, width, height, png),
            )

    def get_blob(self, namespace: str, content_hash: str, mode: str, identity: str) -> bytes | None:
        rows = self._read(
            "SELECT data FROM blobs "
            "WHERE namespace = ? AND content_hash = ? AND mode = ? AND identity = ?",
            (namespace, content_hash, mode, identity),
        )
        return bytes(rows[0][0]) if rows else None

    def put_blob(
        self, namespace: str, content_hash: str, mode: str, identity: str, data: bytes
    ) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"put_blob stores bytes, not {type(data).__name__}: serialize first")
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?)",
                (namespace, content_hash, mode, identity, bytes(data)),
            )

    def count_images(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM page_images")[0][0])

    # --- recalls (rehearsal) ------------------------------------------------------------------

    def record_recall(self, thread_id: str, page_ids: Sequence[int], page_count: int) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO recalls VALUES (?, ?, ?)",
                [(thread_id, page_id, page_count) for page_id in sorted(set(page_ids))],
            )

    def recalls(self, thread_id: str) -> dict[int, int]:
        rows = self._read(
            "SELECT page_id, page_count FROM recalls WHERE thread_id = ?", (thread_id,)
        )
        return {int(page_id): int(count) for page_id, count in rows}

    # --- threads, lifetime ---------------------------------------------------------------------

    def thread_ids(self) -> list[str]:
        return [row[0] for row in self._read("SELECT DISTINCT thread_id FROM turns ORDER BY 1")]

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
