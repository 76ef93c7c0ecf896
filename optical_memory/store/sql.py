"""The SQL both stores share: every statement written once, read through a
:class:`~optical_memory.store.dialect.Dialect`.

:class:`SQLBase` holds the turns, pages and caches of a :class:`~optical_memory.store.Store`;
:class:`~optical_memory.store.search.SQLSearch` and
:class:`~optical_memory.store.sql_threads.SQLThreads` add search and whole threads. A store
built on them supplies its connections (:meth:`SQLBase._read`, :meth:`SQLBase._transaction`)
and its full-text index (:meth:`SQLBase._insert_turn`); the row helpers here turn what the
database returns into the store's records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Self

from optical_memory.store import (
    MESSAGE_KEY_NAMESPACE,
    SCHEMA_VERSION,
    BlobOwner,
    NewPage,
    NewTurn,
    PageRecord,
    PageSpan,
    Store,
    StoreError,
    blob_owner,
    check_thread_id,
)
from optical_memory.store.dialect import MAX_ID, Dialect
from optical_memory.turns import Turn

#: The blobs table's columns, in the order every insert gives them.
BLOB_COLUMNS = "namespace, content_hash, mode, identity, data, owner_kind, owner_thread, owner_page"
#: Write a blob (a second write of its key replaces it).
BLOB_UPSERT = (
    f"INSERT INTO {{s}}.blobs ({BLOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (namespace, content_hash, mode, identity) DO UPDATE SET data = excluded.data, "
    "owner_kind = excluded.owner_kind, owner_thread = excluded.owner_thread, "
    "owner_page = excluded.owner_page"
)
#: Note a page's recall (a second one replaces the page count).
RECALL_UPSERT = (
    "INSERT INTO {s}.recalls VALUES (?, ?, ?) "
    "ON CONFLICT (thread_id, page_id) DO UPDATE SET page_count = excluded.page_count"
)
#: Append one page.
PAGE_INSERT = (
    "INSERT INTO {s}.pages (thread_id, seq, content_hash, spans, text_tokens) "
    "VALUES (?, ?, ?, ?, ?)"
)
#: Ids a statement binds at most (SQLite's limit on parameters is far above).
CHUNK = 500

#: A turn's row as a store inserts it: ``(thread_id, number, role, content, timestamp ISO text
#: or None, text_tokens)``.
TurnRow = tuple[str, int, str, str, str | None, int]

_TURNS = "SELECT id, role, content, timestamp, number FROM {s}.turns "
_PAGES = "SELECT id, thread_id, seq, content_hash, spans, text_tokens FROM {s}.pages "
_IMAGE_KEY = "WHERE content_hash = ? AND mode = ? AND renderer = ?"


def blob_row(
    namespace: str, content_hash: str, mode: str, identity: str, data: bytes | str, owner: BlobOwner
) -> tuple[str, str, str, str, bytes, str, str | None, str | None]:
    """A blob's values in :data:`BLOB_COLUMNS` order (text data stored as its UTF-8 bytes)."""
    payload = data.encode() if isinstance(data, str) else bytes(data)
    return (
        namespace,
        content_hash,
        mode,
        identity,
        payload,
        owner.kind,
        owner.thread_id,
        owner.page_hash,
    )


def page_from_row(row: Sequence[object]) -> PageRecord:
    """A :class:`PageRecord` from ``(id, thread_id, seq, content_hash, spans JSON, tokens)``."""
    page_id, thread_id, seq, content_hash, spans, text_tokens = row
    return PageRecord(
        id=int(page_id),  # type: ignore[call-overload]
        thread_id=str(thread_id),
        seq=int(seq),  # type: ignore[call-overload]
        content_hash=str(content_hash),
        spans=tuple(PageSpan(*span) for span in json.loads(str(spans))),
        text_tokens=int(text_tokens),  # type: ignore[call-overload]
    )


def page_row(thread_id: str, seq: int, page: NewPage) -> tuple[str, int, str, str, int]:
    """A page's values in :data:`PAGE_INSERT` order (spans as ``[[turn_id, start, end], ...]``)."""
    spans = json.dumps([[s.turn_id, s.start, s.end] for s in page.spans])
    return (thread_id, seq, page.content_hash, spans, page.text_tokens)


def checked_version(rows: Sequence[Sequence[object]], where: str) -> int:
    """The schema version from the ``schema_version`` table's rows, or a :class:`StoreError`
    when it is missing, unreadable or newer than this code (the store is then left untouched)."""
    values = [row[0] for row in rows]
    if len(values) != 1 or isinstance(values[0], bool) or not isinstance(values[0], int):
        shown = ", ".join(repr(v) for v in values) or "no row"
        raise StoreError(
            f"{where} has an unreadable schema version ({shown}; expected one whole number): "
            "it was changed by hand or by another program; restore it from a backup or pass "
            "another store"
        )
    version = values[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {version}, newer than this optical-memory "
            f"understands ({SCHEMA_VERSION}): upgrade optical-memory (nothing was changed)"
        )
    if version < 1:
        raise StoreError(f"{where} has an impossible schema version {version}: restore a backup")
    return version


class SQLBase(Store):
    """Turns, pages and caches of a :class:`~optical_memory.store.Store` on an SQL database.

    ``dialect`` says how the database reads the shared statements; a subclass gives the
    connections and the full-text index (the methods that raise NotImplementedError).
    """

    dialect: Dialect

    # --- what a store supplies -----------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """The rows of one query (``sql`` in the shared form) outside any transaction."""
        raise NotImplementedError

    def _transaction(self, thread_id: str | None) -> AbstractContextManager[Any]:
        """A write transaction yielding its connection; it holds the thread's write lock
        (``thread_id``), so a thread's writers run one at a time, or the store's when None."""
        raise NotImplementedError

    def _insert_turn(self, db: Any, row: TurnRow) -> int:
        """Insert one turn and index it (inside ``db``'s transaction); return its id."""
        raise NotImplementedError

    # --- plumbing ------------------------------------------------------------------------------

    def _run(self, db: Any, sql: str, params: Sequence[object] = ()) -> Any:
        """Execute ``sql`` (the shared form) inside ``db``'s transaction; return its cursor."""
        return db.execute(self.dialect.sql(sql), params)

    def _run_many(self, db: Any, sql: str, rows: Sequence[Sequence[object]]) -> None:
        cursor = db.cursor()
        try:
            cursor.executemany(self.dialect.sql(sql), rows)
        finally:
            cursor.close()

    def _turns(self, where: str, params: Sequence[object]) -> list[Turn]:
        return [self.dialect.turn(row) for row in self._read(_TURNS + where, params)]

    # --- turns ---------------------------------------------------------------------------------

    def add_turns(
        self, thread_id: str, turns: Sequence[NewTurn], *, keys: Sequence[str | None] = ()
    ) -> list[Turn]:
        with self._transaction(check_thread_id(thread_id)) as db:
            return self._insert_turns(db, thread_id, turns, keys)

    def _insert_turns(
        self,
        db: Any,
        thread_id: str,
        turns: Sequence[NewTurn],
        keys: Sequence[str | None] = (),
    ) -> list[Turn]:
        """Insert turns with the thread's next numbers, and their keys (see
        :meth:`~optical_memory.store.Store.add_turns`), inside the caller's locked transaction."""
        newest = self._run(
            db, "SELECT MAX(number) FROM {s}.turns WHERE thread_id = ?", (thread_id,)
        ).fetchone()
        number = (newest[0] if newest is not None else None) or 0
        added: list[Turn] = []
        for index, (role, content, timestamp, text_tokens) in enumerate(turns):
            number += 1
            stamp = timestamp.isoformat() if timestamp is not None else None
            turn_id = self._insert_turn(db, (thread_id, number, role, content, stamp, text_tokens))
            key = keys[index] if index < len(keys) else None
            if key is not None:
                owner = blob_owner(MESSAGE_KEY_NAMESPACE, thread_id, None)
                row = blob_row(MESSAGE_KEY_NAMESPACE, thread_id, "", key, str(turn_id), owner)
                self._run(db, BLOB_UPSERT, row)
            added.append(
                Turn(id=turn_id, role=role, content=content, timestamp=timestamp, number=number)
            )
        return added

    def get_turns(self, thread_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        ids = sorted(set(turn_ids))
        turns: list[Turn] = []
        for start in range(0, len(ids), CHUNK):
            among, params = self.dialect.any_of("id", ids[start : start + CHUNK])
            turns += self._turns(
                f"WHERE thread_id = ? AND {among} ORDER BY id", [thread_id, *params]
            )
        return turns

    def turn_text_tokens(self, thread_id: str, turn_ids: Sequence[int]) -> dict[int, int]:
        ids = sorted(set(turn_ids))
        tokens: dict[int, int] = {}
        for start in range(0, len(ids), CHUNK):
            among, params = self.dialect.any_of("id", ids[start : start + CHUNK])
            rows = self._read(
                f"SELECT id, text_tokens FROM {{s}}.turns WHERE thread_id = ? AND {among}",
                [thread_id, *params],
            )
            tokens.update((int(turn_id), int(count)) for turn_id, count in rows)
        return tokens

    def newest_turns(self, thread_id: str, count: int) -> list[Turn]:
        turns = self._turns("WHERE thread_id = ? ORDER BY id DESC LIMIT ?", (thread_id, count))
        return turns[::-1]

    def turns_between(self, thread_id: str, after_id: int, before_id: int | None) -> list[Turn]:
        upper = before_id if before_id is not None else MAX_ID
        return self._turns(
            "WHERE thread_id = ? AND id > ? AND id < ? ORDER BY id", (thread_id, after_id, upper)
        )

    def iter_turns(self, thread_id: str, *, newest_first: bool = False) -> Iterator[Turn]:
        # CHUNK turns per query, so huge histories stream without holding a connection.
        last: int | None = None
        order, compare = ("DESC", "<") if newest_first else ("ASC", ">")
        while True:
            bound = "" if last is None else f"AND id {compare} ?"
            params: list[object] = [thread_id] + ([] if last is None else [last])
            turns = self._turns(
                f"WHERE thread_id = ? {bound} ORDER BY id {order} LIMIT {CHUNK}", params
            )
            if not turns:
                return
            yield from turns
            last = turns[-1].id

    def count_turns(self, thread_id: str) -> int:
        rows = self._read("SELECT COUNT(*) FROM {s}.turns WHERE thread_id = ?", (thread_id,))
        return int(rows[0][0])

    def sum_text_tokens(self, thread_id: str) -> int:
        rows = self._read(
            "SELECT SUM(text_tokens) FROM {s}.turns WHERE thread_id = ?", (thread_id,)
        )
        return int(rows[0][0] or 0)

    # --- pages ---------------------------------------------------------------------------------

    def pages(self, thread_id: str, *, after_seq: int = -1) -> list[PageRecord]:
        rows = self._read(
            _PAGES + "WHERE thread_id = ? AND seq > ? ORDER BY seq", (thread_id, after_seq)
        )
        return [page_from_row(row) for row in rows]

    def page(self, thread_id: str, page_id: int) -> PageRecord | None:
        if not -MAX_ID - 1 <= page_id <= MAX_ID:
            return None
        rows = self._read(_PAGES + "WHERE thread_id = ? AND id = ?", (thread_id, page_id))
        return page_from_row(rows[0]) if rows else None

    def append_pages(self, thread_id: str, after_seq: int, pages: Sequence[NewPage]) -> bool:
        try:
            with self._transaction(check_thread_id(thread_id)) as db:
                row = self._run(
                    db, "SELECT MAX(seq) FROM {s}.pages WHERE thread_id = ?", (thread_id,)
                ).fetchone()
                newest = row[0] if row is not None else None
                if (-1 if newest is None else newest) != after_seq:
                    return False
                self._run_many(
                    db,
                    PAGE_INSERT,
                    [page_row(thread_id, after_seq + 1 + n, page) for n, page in enumerate(pages)],
                )
        except self.dialect.unique_violation:
            return False  # another writer froze the same seq first (cannot happen under the lock)
        return True

    # --- caches --------------------------------------------------------------------------------

    def image_size(self, content_hash: str, mode: str, renderer: str) -> tuple[int, int] | None:
        rows = self._read(
            "SELECT width, height FROM {s}.page_images " + _IMAGE_KEY,
            (content_hash, mode, renderer),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def get_image(self, content_hash: str, mode: str, renderer: str) -> bytes | None:
        rows = self._read(
            "SELECT png FROM {s}.page_images " + _IMAGE_KEY, (content_hash, mode, renderer)
        )
        return bytes(rows[0][0]) if rows else None

    def put_image(
        self, content_hash: str, mode: str, renderer: str, width: int, height: int, png: bytes
    ) -> None:
        with self._transaction(None) as db:
            self._run(
                db,
                "INSERT INTO {s}.page_images VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (content_hash, mode, renderer, width, height, bytes(png)),
            )

    def get_blob(self, namespace: str, content_hash: str, mode: str, identity: str) -> bytes | None:
        rows = self._read(
            "SELECT data FROM {s}.blobs "
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
        row = blob_row(
            namespace,
            content_hash,
            mode,
            identity,
            data,
            blob_owner(namespace, content_hash, owner),
        )
        with self._transaction(None) as db:
            self._run(db, BLOB_UPSERT, row)

    def count_images(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM {s}.page_images")[0][0])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def thread_ids(self) -> list[str]:
        rows = self._read("SELECT DISTINCT thread_id FROM {s}.turns")
        return sorted(row[0] for row in rows)  # code point order on both databases


__all__ = [
    "BLOB_COLUMNS",
    "BLOB_UPSERT",
    "CHUNK",
    "PAGE_INSERT",
    "RECALL_UPSERT",
    "SQLBase",
    "TurnRow",
    "blob_row",
    "checked_version",
    "page_from_row",
    "page_row",
]
