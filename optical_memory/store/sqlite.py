"""The :class:`~optical_memory.store.Store` on one SQLite file (or RAM).

Opening never changes a file it should not own: the tables and the schema version are read
before anything is created, so another program's database or a newer store is refused
untouched, and ``PRAGMA quick_check`` refuses a damaged one. Later SQLite errors become a
:class:`~optical_memory.store.StoreError` naming the cause (damage, a read-only file, a full
disk); once damage is seen the store refuses every further write.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from optical_memory.store import (
    MESSAGE_KEY_NAMESPACE,
    OWNER_BACKFILL,
    SCHEMA_VERSION,
    BlobOwner,
    NewPage,
    PageRecord,
    Store,
    StoreDamagedError,
    StoreError,
    blob_owner,
    blob_row,
    check_thread_id,
    checked_version,
    logger,
    page_from_row,
    spans_json,
    turn_from_row,
)
from optical_memory.store.owners import BLOB_COLUMNS
from optical_memory.store.sqlite_search import (
    TURN_COLUMNS,
    SQLiteSearch,
    insert_turn,
    search_schema,
    upgrade_from_version_1,
)
from optical_memory.store.sqlite_threads import SQLiteThreads, upgrade_blob_owners
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
CREATE INDEX IF NOT EXISTS pages_by_hash ON pages (content_hash);
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
    owner_kind   TEXT NOT NULL DEFAULT 'page',
    owner_thread TEXT,
    owner_page   TEXT,
    PRIMARY KEY (namespace, content_hash, mode, identity)
);
CREATE TABLE IF NOT EXISTS recalls (
    thread_id  TEXT    NOT NULL,
    page_id    INTEGER NOT NULL,
    page_count INTEGER NOT NULL,
    PRIMARY KEY (thread_id, page_id)
);
"""


class SQLiteStore(SQLiteSearch, SQLiteThreads, Store):
    """:class:`Store` on one SQLite file (``path``) or in RAM (``path=None``).

    The file uses WAL journaling (readers never block the writer), a busy timeout of
    :data:`BUSY_TIMEOUT_S` so concurrent processes wait instead of failing, and one
    ``BEGIN IMMEDIATE`` transaction per write, so a turn is on disk once ``add_turn`` returns and
    a killed process loses nothing that was acknowledged. Deleted rows are overwritten with zeros
    (``secure_delete``). One instance may be shared by threads.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._closed = False
        self._damaged: StoreDamagedError | None = None
        self._lock = threading.RLock()
        if self.path is not None:
            _check_path(self.path)
        target = ":memory:" if self.path is None else str(self.path)
        try:
            self._db = sqlite3.connect(
                target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise self._failure(error, "open") from error
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._db.execute("PRAGMA secure_delete = ON")
            self._open()
        except sqlite3.Error as error:
            self._db.close()
            raise self._failure(error, "open") from error
        except StoreError:
            self._db.close()
            raise

    # --- opening -------------------------------------------------------------------------------

    def _open(self) -> None:
        """Check what the file holds, create or migrate the schema, then switch to WAL."""
        tables = self._tables()
        where = str(self.path) if self.path is not None else "the in-memory store"
        if tables and "schema_version" not in tables:
            raise StoreError(
                f"{where} is not an optical-memory store (it holds the tables "
                f"{', '.join(sorted(tables)[:6])}): pass a new file path; nothing was changed"
            )
        if tables:
            checked_version(
                self._db.execute("SELECT version FROM schema_version").fetchall(), where
            )
            self._quick_check(where)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # Checked again under the write lock: another process may have created it meanwhile.
            if "schema_version" in self._tables():
                version = checked_version(
                    self._db.execute("SELECT version FROM schema_version").fetchall(), where
                )
                self._create()  # tables or indexes an older store may still lack
                if version < 2:
                    upgrade_from_version_1(self._db)
                if version < 3:
                    upgrade_blob_owners(self._db, OWNER_BACKFILL.replace("{s}.", ""))
                if version < SCHEMA_VERSION:
                    logger.info("store %s upgraded to schema version %d", where, SCHEMA_VERSION)
                if version < SCHEMA_VERSION:
                    self._db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
                self._create_search()
            else:
                self._create()
                upgrade_blob_owners(self._db, "")
                self._create_search()
                self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL keeps every commit through a process crash (SIGKILL); only
            # a power loss may drop the last commits, which FULL would also guard against.
            self._db.execute("PRAGMA synchronous = NORMAL")

    def _tables(self) -> set[str]:
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {row[0] for row in rows if not row[0].startswith("sqlite_")}

    def _create(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)

    def _create_search(self) -> None:
        for statement in search_schema():
            self._db.execute(statement)

    def _quick_check(self, where: str) -> None:
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            raise self._damage(where, "; ".join(problems))

    # --- plumbing ------------------------------------------------------------------------------

    def _damage(self, where: str, detail: str) -> StoreDamagedError:
        if self.path is not None:
            file = shlex.quote(str(self.path))
            advice = (
                f"recover what is readable into a new file with `sqlite3 {file} .recover | "
                f"sqlite3 recovered.db` (where that sqlite3 shell cannot .recover: `sqlite3 "
                f"{file} .dump | sed '$s/^ROLLBACK.*/COMMIT;/' | sqlite3 recovered.db`), "
                "then open recovered.db"
            )
        else:
            advice = "start a new store"
        error = StoreDamagedError(
            f"{where} is damaged ({detail}): optical-memory stopped writing to it; {advice}"
        )
        self._damaged = error
        logger.error("store %s is damaged: %s", where, detail)
        return error

    def _failure(self, error: sqlite3.Error, doing: str) -> StoreError:
        """The :class:`StoreError` for an SQLite error, naming its real cause."""
        where = str(self.path) if self.path is not None else "the in-memory store"
        name = getattr(error, "sqlite_errorname", "") or ""
        text = str(error)
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text:
            if doing == "open" and name.startswith("SQLITE_NOTADB"):
                return StoreError(
                    f"cannot open {where} as an optical-memory store ({text}): it is not an "
                    "SQLite database; pass a new file path or a store written by optical-memory"
                )
            return self._damage(where, text)
        if name.startswith("SQLITE_READONLY"):
            return StoreError(
                f"cannot write to {where}: it is read-only ({text}); make the file and its folder "
                "writable by this user (chmod u+w) or open a writable copy"
            )
        if name.startswith("SQLITE_FULL") or "disk is full" in text:
            folder = self.path.parent if self.path is not None else "memory"
            return StoreError(
                f"cannot {doing} {where}: the disk holding {folder} is full ({text}); free space "
                "and retry (turns already acknowledged are kept)"
            )
        if name.startswith("SQLITE_BUSY") or "locked" in text:
            return StoreError(
                f"{where} stayed locked by another process for over {BUSY_TIMEOUT_S:.0f} s "
                f"({text}): look for a stuck process holding it"
            )
        if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PERM")):
            return StoreError(
                f"cannot {doing} {where}: the operating system refused ({text}); check the "
                "disk, the permissions of the file and its folder, and free space"
            )
        return StoreError(
            f"cannot {doing} {where} as an optical-memory store ({text}): pass a new file path "
            "or a store written by optical-memory"
        )

    class _Transaction:
        def __init__(self, store: SQLiteStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            try:
                self.store._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                self.store._lock.release()
                raise self.store._failure(error, "write to") from error
            except BaseException:
                self.store._lock.release()
                raise
            return self.store._db

        def __exit__(self, kind: object, error: object, tb: object) -> None:
            try:
                if kind is None:
                    self.store._db.execute("COMMIT")
                else:
                    self.store._db.execute("ROLLBACK")
            except sqlite3.Error as failure:
                if kind is None:
                    raise self.store._failure(failure, "write to") from failure
            finally:
                self.store._lock.release()
            if isinstance(error, sqlite3.Error):
                raise self.store._failure(error, "write to") from error

    def _write(self) -> SQLiteStore._Transaction:
        self._check_open()
        if self._damaged is not None:
            raise self._damaged
        return SQLiteStore._Transaction(self)

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        self._check_open()
        with self._lock:
            try:
                return self._db.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as error:
                raise self._failure(error, "read") from error

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("this store is closed: open a new OpticalMemory / SQLiteStore")

    # --- turns ---------------------------------------------------------------------------------

    def add_turns(
        self,
        thread_id: str,
        turns: Sequence[tuple[str, str, datetime | None, int]],
        *,
        keys: Sequence[str | None] = (),
    ) -> list[Turn]:
        check_thread_id(thread_id)
        added: list[Turn] = []
        with self._write() as db:
            for index, (role, content, timestamp, text_tokens) in enumerate(turns):
                stamp = timestamp.isoformat() if timestamp is not None else None
                turn_id, number = insert_turn(db, thread_id, role, content, stamp, text_tokens)
                key = keys[index] if index < len(keys) else None
                if key is not None:
                    owner = blob_owner(MESSAGE_KEY_NAMESPACE, thread_id, None)
                    _insert_blob(db, MESSAGE_KEY_NAMESPACE, thread_id, "", key, str(turn_id), owner)
                added.append(
                    Turn(id=turn_id, role=role, content=content, timestamp=timestamp, number=number)
                )
        return added

    _TURN_COLUMNS = TURN_COLUMNS

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
            turns.extend(turn_from_row(row) for row in rows)
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
        return [turn_from_row(row) for row in reversed(rows)]

    def turns_between(self, thread_id: str, after_id: int, before_id: int | None) -> list[Turn]:
        upper = before_id if before_id is not None else 2**63 - 1
        rows = self._read(
            f"SELECT {self._TURN_COLUMNS} FROM turns "
            "WHERE thread_id = ? AND id > ? AND id < ? ORDER BY id",
            (thread_id, after_id, upper),
        )
        return [turn_from_row(row) for row in rows]

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
                yield turn_from_row(row)
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
        return [page_from_row(row) for row in rows]

    def page(self, thread_id: str, page_id: int) -> PageRecord | None:
        rows = self._read(
            f"SELECT {self._PAGE_COLUMNS} FROM pages WHERE thread_id = ? AND id = ?",
            (thread_id, page_id),
        )
        return page_from_row(rows[0]) if rows else None

    def append_pages(self, thread_id: str, after_seq: int, pages: Sequence[NewPage]) -> bool:
        check_thread_id(thread_id)
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
                        spans_json(page.spans),
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
        self,
        namespace: str,
        content_hash: str,
        mode: str,
        identity: str,
        data: bytes,
        *,
        owner: BlobOwner | None = None,
    ) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"put_blob stores bytes, not {type(data).__name__}: serialize first")
        found = blob_owner(namespace, content_hash, owner)
        with self._write() as db:
            _insert_blob(db, namespace, content_hash, mode, identity, data, found)

    def count_images(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM page_images")[0][0])

    # --- threads, lifetime ---------------------------------------------------------------------

    def thread_ids(self) -> list[str]:
        return [row[0] for row in self._read("SELECT DISTINCT thread_id FROM turns ORDER BY 1")]

    def size_bytes(self) -> int:
        """The database file's size after a passive checkpoint (the write-ahead log beside it
        is left out: SQLite checkpoints it at about 4 MB)."""
        if self.path is None:
            pages = self._read("PRAGMA page_count")[0][0]
            return int(pages) * int(self._read("PRAGMA page_size")[0][0])
        self._read("PRAGMA wal_checkpoint(PASSIVE)")
        return os.stat(self.path).st_size

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_path(path: Path) -> None:
    """Refuse, before SQLite touches anything, paths that cannot hold a writable store."""
    try:
        is_dir, folder_exists, exists = path.is_dir(), path.parent.exists(), path.exists()
    except OSError as error:
        raise StoreError(
            f"cannot look at {path} ({error.strerror}): this user may not enter one of its "
            "folders; fix the permissions or pass another path"
        ) from error
    if is_dir:
        raise StoreError(f"{path} is a directory: pass a file path such as {path}/memory.db")
    if not folder_exists:
        raise StoreError(f"folder {path.parent} does not exist: create it or pass another path")
    if exists and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(
            f"{path} is read-only for this user: optical-memory writes every turn; make it "
            f"writable (chmod u+rw {path}) or open a writable copy"
        )
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(
            f"folder {path.parent} is not writable for this user: SQLite keeps its write-ahead "
            f"log ({path.name}-wal) beside the store; make the folder writable or move the file"
        )


def _insert_blob(
    db: sqlite3.Connection,
    namespace: str,
    content_hash: str,
    mode: str,
    identity: str,
    data: bytes | str,
    owner: BlobOwner,
) -> None:
    """Write a blob owned by ``owner`` inside the caller's transaction (a second write of its
    key replaces it)."""
    db.execute(
        f"INSERT OR REPLACE INTO blobs ({BLOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        blob_row(namespace, content_hash, mode, identity, data, owner),
    )
