"""Whole threads in a store on SQL: importing one in a transaction under the thread's lock,
deleting one for good, and retention of the renders and blobs its pages can never show again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optical_memory.store import DeriveParts, NewTurn, ThreadNotEmptyError, check_thread_id
from optical_memory.store.dialect import MAX_INT
from optical_memory.store.owners import BlobOwner
from optical_memory.store.sql import (
    BLOB_UPSERT,
    PAGE_INSERT,
    RECALL_UPSERT,
    SQLBase,
    blob_row,
    page_row,
)
from optical_memory.turns import Turn

# Content hashes of a thread's pages (seq in a range) that no other thread's page shares.
_PRIVATE_HASHES = """
SELECT p.content_hash FROM {s}.pages p
WHERE p.thread_id = ? AND p.seq BETWEEN ? AND ?
  AND NOT EXISTS (
    SELECT 1 FROM {s}.pages o WHERE o.content_hash = p.content_hash AND o.thread_id <> p.thread_id
  )
"""


class SQLThreads(SQLBase):
    """Import, delete and retention of a store on SQL."""

    def _unindex_thread(self, db: Any, thread_id: str) -> None:
        """Take the thread's turns out of a search index kept apart from them (inside the
        delete's transaction, before the turns go)."""

    def _after_delete(self, thread_id: str) -> None:
        """Clear what a committed delete leaves behind outside the tables (e.g. old copies)."""

    def import_thread(
        self, thread_id: str, turns: Sequence[NewTurn], derive: DeriveParts
    ) -> list[Turn]:
        # The thread's write lock serializes concurrent imports (any process): the second one
        # waits, then finds the thread taken and writes nothing.
        with self._transaction(check_thread_id(thread_id)) as db:
            taken = self._run(
                db,
                "SELECT EXISTS (SELECT 1 FROM {s}.turns WHERE thread_id = ?) "
                "OR EXISTS (SELECT 1 FROM {s}.pages WHERE thread_id = ?)",
                (thread_id, thread_id),
            ).fetchone()
            if taken is not None and taken[0]:
                raise ThreadNotEmptyError(thread_id)
            added = self._insert_turns(db, thread_id, turns)
            parts = derive(added)
            page_ids = []
            for seq, page in enumerate(parts.pages):
                row = self._run(db, PAGE_INSERT + " RETURNING id", page_row(thread_id, seq, page))
                page_ids.append(row.fetchone()[0])
            self._run_many(
                db, RECALL_UPSERT, [(thread_id, page_ids[seq], n) for seq, n in parts.recalls]
            )
            owner = BlobOwner.thread(thread_id)
            self._run_many(
                db,
                BLOB_UPSERT,
                [blob_row(ns, thread_id, "", key, data, owner) for ns, key, data in parts.blobs],
            )
        return added

    def thread_blobs(self, thread_id: str, namespace: str) -> dict[str, bytes]:
        rows = self._read(
            "SELECT identity, data FROM {s}.blobs WHERE owner_kind = 'thread' "
            "AND owner_thread = ? AND namespace = ? ORDER BY identity",
            (thread_id, namespace),
        )
        return {str(identity): bytes(data) for identity, data in rows}

    def prune_renders(
        self, thread_id: str, first_seq: int, last_seq: int, modes: Sequence[str]
    ) -> int:
        if not modes or last_seq < first_seq:
            return 0
        first_seq, last_seq = max(first_seq, -MAX_INT - 1), min(last_seq, MAX_INT)
        among, params = self.dialect.any_of("mode", modes)
        params += [thread_id, first_seq, last_seq]
        gone = 0
        with self._transaction(None) as db:
            for table, owned in (("page_images", "content_hash"), ("blobs", "owner_page")):
                only_pages = "owner_kind = 'page' AND " if table == "blobs" else ""
                gone += self._run(
                    db,
                    f"DELETE FROM {{s}}.{table} WHERE {only_pages}{among} "
                    f"AND {owned} IN ({_PRIVATE_HASHES})",
                    params,
                ).rowcount
        return gone

    def delete_thread(self, thread_id: str) -> int:
        everything = (thread_id, -1, MAX_INT)
        with self._transaction(check_thread_id(thread_id)) as db:
            self._unindex_thread(db, thread_id)
            self._run(
                db,
                f"DELETE FROM {{s}}.page_images WHERE content_hash IN ({_PRIVATE_HASHES})",
                everything,
            )
            self._run(
                db,
                "DELETE FROM {s}.blobs WHERE owner_kind <> 'model' AND (owner_thread = ? "
                f"OR owner_page IN ({_PRIVATE_HASHES}))",
                (thread_id, *everything),
            )
            for table in ("recalls", "pages"):
                self._run(db, f"DELETE FROM {{s}}.{table} WHERE thread_id = ?", (thread_id,))
            deleted = self._run(db, "DELETE FROM {s}.turns WHERE thread_id = ?", (thread_id,))
            count = int(deleted.rowcount)
        self._after_delete(thread_id)
        return count


__all__ = ["SQLThreads"]
