"""The :class:`~optical_memory.store.Store` on PostgreSQL, shared by many workers on many hosts.

Needs the ``postgres`` extra (psycopg 3 and psycopg_pool). Same semantics as the SQLite store:

* ``add_turn`` commits before it returns; turns of one thread are appended under a
  per-thread advisory lock, so ids follow commit order within a thread (a reader never sees
  turn 11 before turn 10 and packs past it);
* pages are appended with the same optimistic check (the newest ``seq`` must still be the one
  the writer saw) under the same lock, backed by ``UNIQUE (thread_id, seq)``;
* each turn gets the thread's next number, and its full-text index entry
  (:mod:`~optical_memory.store.postgres_search`), in the same transaction under the same lock;
* the render and blob caches are shared by every worker;
* the schema lives in its own PostgreSQL schema (default ``optical_memory``), so the database
  can also hold LangGraph's checkpointer tables; it is created or migrated once, under an
  advisory lock, and a newer or foreign one is refused untouched.

Text goes in as UTF-8 ``bytea`` (PostgreSQL's ``text`` cannot hold NUL characters, which turns
may). Pooled connections are checked before each use, so after a server restart the next call
reconnects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from optical_memory.store import (
    MESSAGE_KEY_NAMESPACE,
    OWNER_BACKFILL,
    SCHEMA_VERSION,
    BlobOwner,
    NewPage,
    PageRecord,
    Store,
    StoreError,
    StoreUnavailableError,
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
from optical_memory.store.postgres_search import (
    SEARCH_SCHEMA,
    SEARCH_VALUE,
    PostgresSearch,
    index_text,
    upgrade_from_version_1,
)
from optical_memory.store.postgres_threads import PostgresThreads
from optical_memory.turns import Turn

#: Tables of the store's PostgreSQL schema (version 2 adds
#: :data:`~optical_memory.store.postgres_search.SEARCH_SCHEMA`, version 3 the blobs' owners).
#: Pruning deletes renders as pages age, and a deleted render's bytes are reused only after
#: ``VACUUM``: the render and blob tables ask autovacuum to run once 2% of their rows are dead
#: (PostgreSQL's default waits for 20%), so pruned renders do not pile up beside the ones still
#: shown.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.turns (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thread_id   TEXT    NOT NULL,
    role        BYTEA   NOT NULL,
    content     BYTEA   NOT NULL,
    timestamp   TEXT,
    text_tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_thread ON {s}.turns (thread_id, id);
CREATE TABLE IF NOT EXISTS {s}.pages (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thread_id    TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    content_hash TEXT    NOT NULL,
    spans        TEXT    NOT NULL,
    text_tokens  INTEGER NOT NULL,
    UNIQUE (thread_id, seq)
);
CREATE INDEX IF NOT EXISTS pages_by_hash ON {s}.pages (content_hash);
CREATE TABLE IF NOT EXISTS {s}.page_images (
    content_hash TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    renderer     TEXT    NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    png          BYTEA   NOT NULL,
    PRIMARY KEY (content_hash, mode, renderer)
);
CREATE TABLE IF NOT EXISTS {s}.blobs (
    namespace    TEXT  NOT NULL,
    content_hash TEXT  NOT NULL,
    mode         TEXT  NOT NULL,
    identity     TEXT  NOT NULL,
    data         BYTEA NOT NULL,
    owner_kind   TEXT  NOT NULL DEFAULT 'page',
    owner_thread TEXT,
    owner_page   TEXT,
    PRIMARY KEY (namespace, content_hash, mode, identity)
);
ALTER TABLE {s}.blobs ADD COLUMN IF NOT EXISTS owner_kind TEXT NOT NULL DEFAULT 'page';
ALTER TABLE {s}.blobs ADD COLUMN IF NOT EXISTS owner_thread TEXT;
ALTER TABLE {s}.blobs ADD COLUMN IF NOT EXISTS owner_page TEXT;
CREATE INDEX IF NOT EXISTS blobs_by_thread ON {s}.blobs (owner_thread);
CREATE INDEX IF NOT EXISTS blobs_by_page ON {s}.blobs (owner_page, mode);
ALTER TABLE {s}.page_images SET (autovacuum_vacuum_scale_factor = 0.02,
    toast.autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE {s}.blobs SET (autovacuum_vacuum_scale_factor = 0.02,
    toast.autovacuum_vacuum_scale_factor = 0.02)
"""

_TABLES = frozenset({"schema_version", "turns", "pages", "page_images", "blobs", "recalls"})


class PostgresStore(PostgresSearch, PostgresThreads, Store):
    """:class:`~optical_memory.store.Store` in a PostgreSQL database.

    Args:
        dsn: a libpq address, e.g. ``postgresql://user:secret@db.internal:5432/agents``.
        schema: the PostgreSQL schema holding the tables (created if missing).
        max_connections: most pooled connections this instance holds (one per concurrent call).
        connect_timeout_s: how long a call waits for a connection before
            :class:`~optical_memory.store.StoreUnavailableError`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "optical_memory",
        max_connections: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if not schema.isidentifier() or schema.lower() != schema:
            raise ValueError(f"schema must be a lower-case identifier, not {schema!r}")
        self.dsn = dsn
        self.schema = schema
        self.where = _describe(dsn)
        self._timeout = connect_timeout_s
        self._closed = False
        self._close_lock = threading.Lock()
        try:
            with psycopg.connect(dsn, connect_timeout=max(1, round(connect_timeout_s))) as db:
                self._migrate(db)
        except psycopg.OperationalError as error:
            raise self._unreachable(error) from error
        except psycopg.Error as error:
            raise StoreError(f"cannot open the store at {self.where}: {error}") from error
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max(1, max_connections),
            kwargs={"autocommit": True},
            check=_check_connection,
            timeout=connect_timeout_s,
            open=False,
            name=f"optical-memory {self.where}",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as error:
            self._pool.close()
            raise self._unreachable(error) from error

    # --- opening -------------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text.replace("{s}", self.schema)

    def _migrate(self, db: psycopg.Connection[Any]) -> None:
        """Create or check the schema once, whatever number of workers start at the same time."""
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self._lock_key,))
            tables = {
                row[0]
                for row in db.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (self.schema,),
                ).fetchall()
            }
            where = f"schema {self.schema!r} at {self.where}"
            if tables and "schema_version" not in tables:
                raise StoreError(
                    f"{where} is not an optical-memory store (it holds the tables "
                    f"{', '.join(sorted(tables)[:6])}): pass another schema= ; nothing was changed"
                )
            version = SCHEMA_VERSION
            if tables:
                rows = db.execute(self._sql("SELECT version FROM {s}.schema_version")).fetchall()
                version = checked_version(rows, where)
            if tables >= _TABLES and version == SCHEMA_VERSION:
                return  # current: no DDL, so a role without CREATE rights may use it
            db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            for statement in self._sql(_SCHEMA + ";" + SEARCH_SCHEMA).split(";"):
                if statement.strip():
                    db.execute(statement)
            if version < 2:
                turns = upgrade_from_version_1(db, self.schema)
                logger.info(
                    "%s: upgraded to version 2, %d turns numbered and indexed", where, turns
                )
            if tables and version < 3:
                for statement in self._sql(OWNER_BACKFILL).split(";"):
                    if statement.strip():
                        db.execute(statement)
                logger.info("%s: upgraded to version 3, blobs have owners", where)
            if not tables:
                db.execute(
                    self._sql("INSERT INTO {s}.schema_version VALUES (%s)"), (SCHEMA_VERSION,)
                )
            elif version < SCHEMA_VERSION:
                db.execute(
                    self._sql("UPDATE {s}.schema_version SET version = %s"), (SCHEMA_VERSION,)
                )

    @property
    def _lock_key(self) -> str:
        return f"optical-memory schema {self.schema}"

    def _unreachable(self, error: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"cannot reach PostgreSQL at {self.where} "
            f"({str(error).strip() or type(error).__name__}): start the server, or check the "
            "address, user, password and that this host may connect (pg_hba.conf)"
        )

    # --- plumbing ------------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StoreError("this store is closed: open a new OpticalMemory / PostgresStore")
        try:
            with self._pool.connection() as db:
                yield db
        except PoolTimeout as error:
            raise self._unreachable(error) from error
        except pg_errors.IntegrityError:
            raise  # append_pages' optimistic check handles its own
        except psycopg.Error as error:
            state = error.sqlstate or ""
            if isinstance(error, psycopg.OperationalError) and (
                not state or state.startswith(("08", "57P"))
            ):
                raise StoreUnavailableError(
                    f"lost the connection to PostgreSQL at {self.where} during a call "
                    f"({error}): the call may not have completed; the next call reconnects"
                ) from error
            cause = "the server is out of disk or memory: " if state.startswith("53") else ""
            raise StoreError(
                f"PostgreSQL at {self.where} refused the call ({cause}{error}); acknowledged "
                "turns are kept"
            ) from error

    def _read(self, sql: str, params: Sequence[object] | dict[str, object] = ()) -> list[Any]:
        with self._connection() as db:
            return db.execute(self._sql(sql), params).fetchall()

    @contextmanager
    def _thread_write(self, thread_id: str) -> Iterator[psycopg.Connection[Any]]:
        """A transaction holding the thread's advisory lock (serializes its writers)."""
        check_thread_id(thread_id)
        with self._connection() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))", (thread_id,))
            yield db

    # --- turns ---------------------------------------------------------------------------------

    def add_turns(
        self,
        thread_id: str,
        turns: Sequence[tuple[str, str, datetime | None, int]],
        *,
        keys: Sequence[str | None] = (),
    ) -> list[Turn]:
        with self._thread_write(thread_id) as db:
            return self._insert_turns(db, thread_id, turns, keys)

    def _insert_turns(
        self,
        db: psycopg.Connection[Any],
        thread_id: str,
        turns: Sequence[tuple[str, str, datetime | None, int]],
        keys: Sequence[str | None] = (),
    ) -> list[Turn]:
        """Insert turns with the thread's next numbers (inside the caller's locked transaction)."""
        added: list[Turn] = []
        newest = db.execute(
            self._sql("SELECT MAX(number) FROM {s}.turns WHERE thread_id = %s"), (thread_id,)
        ).fetchone()
        number = (newest[0] if newest is not None else None) or 0
        for index, (role, content, timestamp, text_tokens) in enumerate(turns):
            stamp = timestamp.isoformat() if timestamp is not None else None
            number += 1
            row = db.execute(
                self._sql(
                    "INSERT INTO {s}.turns (thread_id, number, role, content, timestamp, "
                    f"text_tokens, search) VALUES (%s, %s, %s, %s, %s, %s, {SEARCH_VALUE}) "
                    "RETURNING id"
                ),
                (
                    thread_id,
                    number,
                    _utf8(role),
                    _utf8(content),
                    stamp,
                    text_tokens,
                    index_text(content),
                ),
            ).fetchone()
            assert row is not None
            key = keys[index] if index < len(keys) else None
            if key is not None:
                owner = blob_owner(MESSAGE_KEY_NAMESPACE, thread_id, None)
                self._insert_blob(db, MESSAGE_KEY_NAMESPACE, thread_id, "", key, str(row[0]), owner)
            added.append(
                Turn(id=row[0], role=role, content=content, timestamp=timestamp, number=number)
            )
        return added

    _TURNS = "SELECT id, role, content, timestamp, number FROM {s}.turns "

    def _turns(self, sql: str, params: Sequence[object]) -> list[Turn]:
        return [turn_from_row(_decoded(row)) for row in self._read(self._TURNS + sql, params)]

    def get_turns(self, thread_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        ids = sorted(set(turn_ids))
        if not ids:
            return []
        return self._turns("WHERE thread_id = %s AND id = ANY(%s) ORDER BY id", (thread_id, ids))

    def turn_text_tokens(self, thread_id: str, turn_ids: Sequence[int]) -> dict[int, int]:
        rows = self._read(
            "SELECT id, text_tokens FROM {s}.turns WHERE thread_id = %s AND id = ANY(%s)",
            (thread_id, sorted(set(turn_ids))),
        )
        return {row[0]: row[1] for row in rows}

    def newest_turns(self, thread_id: str, count: int) -> list[Turn]:
        turns = self._turns("WHERE thread_id = %s ORDER BY id DESC LIMIT %s", (thread_id, count))
        return turns[::-1]

    def turns_between(self, thread_id: str, after_id: int, before_id: int | None) -> list[Turn]:
        upper = before_id if before_id is not None else 2**63 - 1
        return self._turns(
            "WHERE thread_id = %s AND id > %s AND id < %s ORDER BY id", (thread_id, after_id, upper)
        )

    def iter_turns(self, thread_id: str, *, newest_first: bool = False) -> Iterator[Turn]:
        # 500 turns per query, so huge histories stream without holding a connection.
        last: int | None = None
        order, compare = ("DESC", "<") if newest_first else ("ASC", ">")
        while True:
            bound = "" if last is None else f"AND id {compare} %s"
            params: list[object] = [thread_id] + ([] if last is None else [last])
            turns = self._turns(
                f"WHERE thread_id = %s {bound} ORDER BY id {order} LIMIT 500", params
            )
            if not turns:
                return
            yield from turns
            last = turns[-1].id

    def count_turns(self, thread_id: str) -> int:
        return int(
            self._read("SELECT COUNT(*) FROM {s}.turns WHERE thread_id = %s", (thread_id,))[0][0]
        )

    def sum_text_tokens(self, thread_id: str) -> int:
        rows = self._read(
            "SELECT SUM(text_tokens) FROM {s}.turns WHERE thread_id = %s", (thread_id,)
        )
        return int(rows[0][0] or 0)

    # --- pages ---------------------------------------------------------------------------------

    _PAGES = "SELECT id, thread_id, seq, content_hash, spans, text_tokens FROM {s}.pages "

    def pages(self, thread_id: str, *, after_seq: int = -1) -> list[PageRecord]:
        rows = self._read(
            self._PAGES + "WHERE thread_id = %s AND seq > %s ORDER BY seq", (thread_id, after_seq)
        )
        return [page_from_row(row) for row in rows]

    def page(self, thread_id: str, page_id: int) -> PageRecord | None:
        if not -(2**63) <= page_id < 2**63:
            return None
        rows = self._read(self._PAGES + "WHERE thread_id = %s AND id = %s", (thread_id, page_id))
        return page_from_row(rows[0]) if rows else None

    def append_pages(self, thread_id: str, after_seq: int, pages: Sequence[NewPage]) -> bool:
        try:
            with self._thread_write(thread_id) as db:
                row = db.execute(
                    self._sql("SELECT MAX(seq) FROM {s}.pages WHERE thread_id = %s"), (thread_id,)
                ).fetchone()
                newest = row[0] if row is not None else None
                if (-1 if newest is None else newest) != after_seq:
                    return False
                with db.cursor() as cursor:
                    cursor.executemany(
                        self._sql(
                            "INSERT INTO {s}.pages (thread_id, seq, content_hash, spans, "
                            "text_tokens) VALUES (%s, %s, %s, %s, %s)"
                        ),
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
        except pg_errors.UniqueViolation:
            return False  # another writer froze the same seq first (cannot happen under the lock)
        return True

    # --- caches --------------------------------------------------------------------------------

    _IMAGE_KEY = "WHERE content_hash = %s AND mode = %s AND renderer = %s"

    def image_size(self, content_hash: str, mode: str, renderer: str) -> tuple[int, int] | None:
        rows = self._read(
            "SELECT width, height FROM {s}.page_images " + self._IMAGE_KEY,
            (content_hash, mode, renderer),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def get_image(self, content_hash: str, mode: str, renderer: str) -> bytes | None:
        rows = self._read(
            "SELECT png FROM {s}.page_images " + self._IMAGE_KEY, (content_hash, mode, renderer)
        )
        return bytes(rows[0][0]) if rows else None

    def put_image(
        self, content_hash: str, mode: str, renderer: str, width: int, height: int, png: bytes
    ) -> None:
        with self._connection() as db:
            db.execute(
                self._sql(
                    "INSERT INTO {s}.page_images VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING"
                ),
                (content_hash, mode, renderer, width, height, bytes(png)),
            )

    def get_blob(self, namespace: str, content_hash: str, mode: str, identity: str) -> bytes | None:
        rows = self._read(
            "SELECT data FROM {s}.blobs "
            "WHERE namespace = %s AND content_hash = %s AND mode = %s AND identity = %s",
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
        with self._connection() as db:
            self._insert_blob(db, namespace, content_hash, mode, identity, data, found)

    def _insert_blob(
        self,
        db: psycopg.Connection[Any],
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
            self._sql(
                f"INSERT INTO {{s}}.blobs ({BLOB_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (namespace, content_hash, mode, identity) "
                "DO UPDATE SET data = EXCLUDED.data, owner_kind = EXCLUDED.owner_kind, "
                "owner_thread = EXCLUDED.owner_thread, owner_page = EXCLUDED.owner_page"
            ),
            blob_row(namespace, content_hash, mode, identity, data, owner),
        )

    def count_images(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM {s}.page_images")[0][0])

    # --- threads, lifetime ---------------------------------------------------------------------

    def thread_ids(self) -> list[str]:
        rows = self._read("SELECT DISTINCT thread_id FROM {s}.turns")
        return sorted(row[0] for row in rows)  # code point order, as SQLite's

    def vacuum_full(self) -> None:
        """Rewrite the store's tables, their TOAST tables and indexes into new files
        (``VACUUM FULL``), so the bytes of deleted rows leave the table files now instead of
        lingering until autovacuum reuses their space. Each table is locked while it is
        rewritten (writers and readers wait). The write-ahead log and backups keep copies: see
        docs/deploying.md. Needs the tables' owner."""
        with self._connection() as db:  # autocommit: VACUUM cannot run in a transaction
            for table in sorted(_TABLES):
                db.execute(self._sql(f"VACUUM FULL {{s}}.{table}"))

    def size_bytes(self) -> int:
        rows = self._read(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (self.schema,),
        )
        return int(rows[0][0])

    def close(self) -> None:
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r}, schema={self.schema!r})"


# --- helpers ----------------------------------------------------------------------------------


def _describe(dsn: str) -> str:
    """``user@host:port/dbname`` of a libpq address, without its password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as error:
        raise StoreError(
            f"not a valid PostgreSQL address ({error}): use postgresql://user@host/db"
        ) from error
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = parts.get("user") or "(default user)"
    return f"{user}@{host}:{port}/{parts.get('dbname') or user}"


def _check_connection(db: psycopg.Connection[Any]) -> None:
    """The pool's check before lending a connection; a dead one is logged and replaced."""
    try:
        ConnectionPool.check_connection(db)
    except psycopg.Error:
        logger.info("PostgreSQL connection lost (server restarted?); reconnecting")
        raise


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _decoded(row: Sequence[Any]) -> tuple[Any, ...]:
    """A turn row with its ``bytea`` role and content decoded back to text."""
    turn_id, role, content, stamp, number = row
    return turn_id, bytes(role).decode("utf-8"), bytes(content).decode("utf-8"), stamp, number
