"""The :class:`~optical_memory.store.Store` on one SQLite file (or RAM)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from optical_memory.store import SCHEMA_VERSION, NewPage, PageRecord, PageSpan, StoreError
from optical_memory.turns import Turn

#: Seconds a writer waits for another process's lock before SQLite gives up.
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id   TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    timestamp   TEXT,
    text_tokens INTEGER NOT NULL
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
"""


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
        row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = row[0]
        if version is None:
            with self._write():
                if self._db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                    self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this optical-memory "
                f"understands ({SCHEMA_VERSION}): upgrade optical-memory"
            )

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
        turn_id, role, content, stamp = row
        timestamp = datetime.fromisoformat(stamp) if stamp is not None else None
        return Turn(id=turn_id, role=role, content=content, timestamp=timestamp)

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
            cursor = db.execute(
                "INSERT INTO turns (thread_id, role, content, timestamp, text_tokens) "
                "VALUES (?, ?, ?, ?, ?)",
                (thread_id, role, content, stamp, text_tokens),
            )
            turn_id = cursor.lastrowid
        assert turn_id is not None
        return Turn(id=turn_id, role=role, content=content, timestamp=timestamp)

    _TURN_COLUMNS = "id, role, content, timestamp"

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
