"""Whole threads in the SQLite store: importing one in a transaction, deleting one for good, and
retention of the renders and blobs its pages can never show again. :class:`SQLiteThreads` is a
part of :class:`~optical_memory.store.SQLiteStore`; :func:`upgrade_blob_owners` gives a
version-2 store's blobs their owners.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import threading
    from contextlib import AbstractContextManager

from optical_memory.store import (
    ImportedParts,
    StoreError,
    ThreadNotEmptyError,
    check_thread_id,
    logger,
    spans_json,
)
from optical_memory.store.owners import BLOB_COLUMNS
from optical_memory.store.sqlite_search import insert_turn, unindex
from optical_memory.turns import Turn

# Content hashes of a thread's pages (seq in a range) that no other thread's page shares.
_PRIVATE_HASHES = """
SELECT p.content_hash FROM pages p
WHERE p.thread_id = ? AND p.seq BETWEEN ? AND ?
  AND NOT EXISTS (
    SELECT 1 FROM pages o WHERE o.content_hash = p.content_hash AND o.thread_id <> p.thread_id
  )
"""


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


class SQLiteThreads:
    """Import, delete and retention of :class:`~optical_memory.store.SQLiteStore`."""

    if TYPE_CHECKING:
        path: Path | None
        _db: sqlite3.Connection
        _lock: threading.RLock

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _failure(self, error: sqlite3.Error, doing: str) -> StoreError: ...

        def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]: ...

    def import_thread(
        self,
        thread_id: str,
        turns: Sequence[tuple[str, str, datetime | None, int]],
        derive: Callable[[list[Turn]], ImportedParts],
    ) -> list[Turn]:
        check_thread_id(thread_id)
        # BEGIN IMMEDIATE takes the file's write lock: a concurrent import (any process) waits,
        # then finds the thread taken and writes nothing.
        with self._write() as db:
            taken = db.execute(
                "SELECT EXISTS (SELECT 1 FROM turns WHERE thread_id = ?) "
                "OR EXISTS (SELECT 1 FROM pages WHERE thread_id = ?)",
                (thread_id, thread_id),
            ).fetchone()[0]
            if taken:
                raise ThreadNotEmptyError(thread_id)
            added: list[Turn] = []
            for role, content, timestamp, text_tokens in turns:
                stamp = timestamp.isoformat() if timestamp is not None else None
                turn_id, number = insert_turn(db, thread_id, role, content, stamp, text_tokens)
                added.append(
                    Turn(id=turn_id, role=role, content=content, timestamp=timestamp, number=number)
                )
            parts = derive(added)
            page_ids = [
                db.execute(
                    "INSERT INTO pages (thread_id, seq, content_hash, spans, text_tokens) "
                    "VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (thread_id, seq, page.content_hash, spans_json(page.spans), page.text_tokens),
                ).fetchone()[0]
                for seq, page in enumerate(parts.pages)
            ]
            db.executemany(
                "INSERT OR REPLACE INTO recalls VALUES (?, ?, ?)",
                [(thread_id, page_ids[seq], count) for seq, count in parts.recalls],
            )
            db.executemany(
                f"INSERT OR REPLACE INTO blobs ({BLOB_COLUMNS}) "
                "VALUES (?, ?, '', ?, ?, 'thread', ?, NULL)",
                [(ns, thread_id, key, bytes(data), thread_id) for ns, key, data in parts.blobs],
            )
        return added

    def thread_blobs(self, thread_id: str, namespace: str) -> dict[str, bytes]:
        rows = self._read(
            "SELECT identity, data FROM blobs WHERE owner_kind = 'thread' AND owner_thread = ? "
            "AND namespace = ? ORDER BY identity",
            (thread_id, namespace),
        )
        return {str(identity): bytes(data) for identity, data in rows}

    def prune_renders(
        self, thread_id: str, first_seq: int, last_seq: int, modes: Sequence[str]
    ) -> int:
        if not modes or last_seq < first_seq:
            return 0
        marks = ",".join("?" * len(modes))
        params = [*modes, thread_id, first_seq, last_seq]
        gone = 0
        with self._write() as db:
            gone += db.execute(
                f"DELETE FROM page_images WHERE mode IN ({marks}) "
                f"AND content_hash IN ({_PRIVATE_HASHES})",
                params,
            ).rowcount
            gone += db.execute(
                f"DELETE FROM blobs WHERE owner_kind = 'page' AND mode IN ({marks}) "
                f"AND owner_page IN ({_PRIVATE_HASHES})",
                params,
            ).rowcount
        return gone

    def delete_thread(self, thread_id: str) -> int:
        check_thread_id(thread_id)
        everything = (thread_id, -1, 2**62)
        with self._write() as db:
            ids = [
                r[0] for r in db.execute("SELECT id FROM turns WHERE thread_id = ?", (thread_id,))
            ]
            unindex(db, ids)  # while the turns its entries were read from still exist
            # Merge the index's segments, so no deleted entry lingers in them.
            db.execute("INSERT INTO turn_index(turn_index) VALUES ('optimize')")
            db.execute("DELETE FROM recalls WHERE thread_id = ?", (thread_id,))
            db.execute(
                f"DELETE FROM page_images WHERE content_hash IN ({_PRIVATE_HASHES})", everything
            )
            db.execute(
                "DELETE FROM blobs WHERE owner_kind <> 'model' AND (owner_thread = ? "
                f"OR owner_page IN ({_PRIVATE_HASHES}))",
                (thread_id, *everything),
            )
            db.execute("DELETE FROM pages WHERE thread_id = ?", (thread_id,))
            deleted = db.execute("DELETE FROM turns WHERE thread_id = ?", (thread_id,)).rowcount
        if self.path is not None:
            # secure_delete zeroes freed cells, but b-tree rebalancing can leave copies in the
            # free space of pages still in use: VACUUM rewrites the file without them, and the
            # checkpoint then empties the write-ahead log that held the old page versions.
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
        return int(deleted)
