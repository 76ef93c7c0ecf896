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
from collections.abc import Sequence
from pathlib import Path

from optical_memory.store import (
    OWNER_BACKFILL,
    SCHEMA_VERSION,
    StoreDamagedError,
    StoreError,
    logger,
)
from optical_memory.store.dialect import SQLITE
from optical_memory.store.sql import checked_version
from optical_memory.store.sql_threads import SQLThreads
from optical_memory.store.sqlite_search import (
    SQLiteSearch,
    search_schema,
    upgrade_from_version_1,
    upgrade_index,
)

#: Seconds a writer waits for another process's lock before SQLite gives up.
BUSY_TIMEOUT_S = 60.0

# Blob owners (schema version 3): the columns a version-2 store lacks, and their indexes.
_OWNER_COLUMNS = (
    ("owner_kind", "TEXT NOT NULL DEFAULT 'page'"),
    ("owner_thread", "TEXT"),
    ("owner_page", "TEXT"),
)
_OWNER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS blobs_by_thread ON blobs (owner_thread)",
    "CREATE INDEX IF NOT EXISTS blobs_by_page ON blobs (owner_page, mode)",
)


def upgrade_blob_owners(db: sqlite3.Connection, backfill: str) -> None:
    """Give every blob an owner (inside the caller's transaction): the columns and indexes,
    then ``backfill``, the owners a version-2 store's blobs get from their namespaces."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(blobs)")}
    for name, kind in _OWNER_COLUMNS:
        if name not in columns:
            db.execute(f"ALTER TABLE blobs ADD COLUMN {name} {kind}")
    for statement in backfill.split(";"):
        if statement.strip():
            db.execute(statement)
    for statement in _OWNER_INDEXES:
        db.execute(statement)


class SQLiteStore(SQLiteSearch, SQLThreads):
    """:class:`~optical_memory.store.Store` on one SQLite file (``path``) or in RAM (``path=None``).

    The file uses WAL journaling (readers never block the writer), a busy timeout of
    :data:`BUSY_TIMEOUT_S` so concurrent processes wait instead of failing, and one
    ``BEGIN IMMEDIATE`` transaction per write, so a turn is on disk once ``add_turn`` returns and
    a killed process loses nothing that was acknowledged. Deleted rows are overwritten with zeros
    (``secure_delete``). One instance may be shared by threads.
    """

    dialect = SQLITE

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
                if version < 4:
                    upgrade_index(self._db)
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
        for statement in self.dialect.tables():
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

    def _transaction(self, thread_id: str | None) -> SQLiteStore._Transaction:
        # BEGIN IMMEDIATE takes the file's write lock, whatever the thread: writers of every
        # process run one at a time.
        self._check_open()
        if self._damaged is not None:
            raise self._damaged
        return SQLiteStore._Transaction(self)

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        self._check_open()
        with self._lock:
            try:
                return self._db.execute(self.dialect.sql(sql), tuple(params)).fetchall()
            except sqlite3.Error as error:
                raise self._failure(error, "read") from error

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("this store is closed: open a new OpticalMemory / SQLiteStore")

    # --- lifetime ------------------------------------------------------------------------------

    def _after_delete(self, thread_id: str) -> None:
        if self.path is None:
            return
        # secure_delete zeroes freed cells, but b-tree rebalancing can leave copies in the free
        # space of pages still in use: VACUUM rewrites the file without them, and the checkpoint
        # then empties the write-ahead log that held the old page versions.
        with self._lock:
            try:
                self._db.execute("VACUUM")
                busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error as error:
                raise self._failure(error, "write to") from error
        if busy:
            logger.warning(
                "thread %r deleted, but another process kept reading %s: its write-ahead "
                "log keeps old pages until the next checkpoint",
                thread_id,
                self.path,
            )

    def size_bytes(self) -> int:
        """The database file's size after a passive checkpoint (the write-ahead log beside it
        is left out: SQLite's automatic checkpoints keep it short)."""
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
