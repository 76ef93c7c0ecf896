"""Whole threads in the PostgreSQL store: importing one in a transaction under the thread's
lock, deleting one, and retention of the renders and blobs its pages can never show again.
:class:`PostgresThreads` is a part of :class:`~optical_memory.store.postgres.PostgresStore`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from optical_memory.store import ImportedParts, ThreadNotEmptyError, spans_json
from optical_memory.store.owners import BLOB_COLUMNS
from optical_memory.turns import Turn

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import psycopg

# Content hashes of a thread's pages (seq in a range) that no other thread's page shares.
_PRIVATE_HASHES = """
SELECT p.content_hash FROM {s}.pages p
WHERE p.thread_id = %(thread)s AND p.seq BETWEEN %(first)s AND %(last)s
  AND NOT EXISTS (
    SELECT 1 FROM {s}.pages o WHERE o.content_hash = p.content_hash AND o.thread_id <> p.thread_id
  )
"""


class PostgresThreads:
    """Import, delete and retention of :class:`~optical_memory.store.postgres.PostgresStore`."""

    if TYPE_CHECKING:

        def _sql(self, text: str) -> str: ...

        def _read(
            self, sql: str, params: Sequence[object] | dict[str, object] = ()
        ) -> list[Any]: ...

        def _connection(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

        def _thread_write(
            self, thread_id: str
        ) -> AbstractContextManager[psycopg.Connection[Any]]: ...

        def _insert_turns(
            self,
            db: psycopg.Connection[Any],
            thread_id: str,
            turns: Sequence[tuple[str, str, datetime | None, int]],
        ) -> list[Turn]: ...

    def import_thread(
        self,
        thread_id: str,
        turns: Sequence[tuple[str, str, datetime | None, int]],
        derive: Callable[[list[Turn]], ImportedParts],
    ) -> list[Turn]:
        # The thread's advisory lock serializes concurrent imports (any process, any host):
        # the second one waits, then finds the thread taken and writes nothing.
        with self._thread_write(thread_id) as db:
            taken = db.execute(
                self._sql(
                    "SELECT EXISTS (SELECT 1 FROM {s}.turns WHERE thread_id = %(t)s) "
                    "OR EXISTS (SELECT 1 FROM {s}.pages WHERE thread_id = %(t)s)"
                ),
                {"t": thread_id},
            ).fetchone()
            if taken is not None and taken[0]:
                raise ThreadNotEmptyError(thread_id)
            added = self._insert_turns(db, thread_id, turns)
            parts = derive(added)
            page_ids = []
            for seq, page in enumerate(parts.pages):
                row = db.execute(
                    self._sql(
                        "INSERT INTO {s}.pages (thread_id, seq, content_hash, spans, text_tokens) "
                        "VALUES (%s, %s, %s, %s, %s) RETURNING id"
                    ),
                    (thread_id, seq, page.content_hash, spans_json(page.spans), page.text_tokens),
                ).fetchone()
                assert row is not None
                page_ids.append(row[0])
            with db.cursor() as cursor:
                cursor.executemany(
                    self._sql("INSERT INTO {s}.recalls VALUES (%s, %s, %s)"),
                    [(thread_id, page_ids[seq], count) for seq, count in parts.recalls],
                )
                cursor.executemany(
                    self._sql(
                        f"INSERT INTO {{s}}.blobs ({BLOB_COLUMNS}) "
                        "VALUES (%s, %s, '', %s, %s, 'thread', %s, NULL) "
                        "ON CONFLICT (namespace, content_hash, mode, identity) "
                        "DO UPDATE SET data = EXCLUDED.data, owner_kind = 'thread', "
                        "owner_thread = EXCLUDED.owner_thread, owner_page = NULL"
                    ),
                    [(ns, thread_id, key, bytes(data), thread_id) for ns, key, data in parts.blobs],
                )
        return added

    def thread_blobs(self, thread_id: str, namespace: str) -> dict[str, bytes]:
        rows = self._read(
            "SELECT identity, data FROM {s}.blobs WHERE owner_kind = 'thread' "
            "AND owner_thread = %s AND namespace = %s ORDER BY identity",
            (thread_id, namespace),
        )
        return {str(identity): bytes(data) for identity, data in rows}

    def prune_renders(
        self, thread_id: str, first_seq: int, last_seq: int, modes: Sequence[str]
    ) -> int:
        if not modes or last_seq < first_seq:
            return 0
        params = {"thread": thread_id, "first": first_seq, "last": last_seq, "modes": list(modes)}
        gone = 0
        with self._connection() as db, db.transaction():
            for table, owned in (("page_images", "content_hash"), ("blobs", "owner_page")):
                only_pages = "owner_kind = 'page' AND " if table == "blobs" else ""
                cursor = db.execute(
                    self._sql(
                        f"DELETE FROM {{s}}.{table} WHERE {only_pages}mode = ANY(%(modes)s) "
                        f"AND {owned} IN ({_PRIVATE_HASHES})"
                    ),
                    params,
                )
                gone += cursor.rowcount
        return gone

    def delete_thread(self, thread_id: str) -> int:
        params = {"thread": thread_id, "first": -1, "last": 2**31 - 1}
        with self._thread_write(thread_id) as db:
            db.execute(
                self._sql(
                    f"DELETE FROM {{s}}.page_images WHERE content_hash IN ({_PRIVATE_HASHES})"
                ),
                params,
            )
            db.execute(
                self._sql(
                    "DELETE FROM {s}.blobs WHERE owner_kind <> 'model' AND "
                    f"(owner_thread = %(thread)s OR owner_page IN ({_PRIVATE_HASHES}))"
                ),
                params,
            )
            for table in ("recalls", "pages"):
                db.execute(
                    self._sql(f"DELETE FROM {{s}}.{table} WHERE thread_id = %s"), (thread_id,)
                )
            cursor = db.execute(
                self._sql("DELETE FROM {s}.turns WHERE thread_id = %s"), (thread_id,)
            )
            return int(cursor.rowcount)
