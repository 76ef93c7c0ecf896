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

Turns' text goes in as UTF-8 ``bytea`` (PostgreSQL's ``text`` cannot hold NUL characters, which
turns may; see :mod:`~optical_memory.store.dialect`). Pooled connections are checked before each
use, so after a server restart the next call reconnects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from optical_memory.store import (
    OWNER_BACKFILL,
    SCHEMA_VERSION,
    StoreError,
    StoreUnavailableError,
    logger,
)
from optical_memory.store.dialect import postgres
from optical_memory.store.postgres_search import (
    SEARCH_SCHEMA,
    PostgresSearch,
    upgrade_from_version_1,
)
from optical_memory.store.sql import checked_version
from optical_memory.store.sql_threads import SQLThreads

#: What the store's PostgreSQL schema holds beside the shared tables
#: (:data:`~optical_memory.store.dialect.TABLES`; version 2 adds
#: :data:`~optical_memory.store.postgres_search.SEARCH_SCHEMA`): the blobs' owners (version 3)
#: and how vacuum treats the caches. Pruning deletes renders as pages age, and a deleted
#: render's bytes are reused only after ``VACUUM``: the render and blob tables ask autovacuum
#: to run once 2% of their rows are dead (PostgreSQL's default waits for 20%), so pruned renders
#: do not pile up beside the ones still shown.
_SCHEMA = """
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


class PostgresStore(PostgresSearch, SQLThreads):
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
        self.dialect = postgres(schema, pg_errors.UniqueViolation)
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
                rows = db.execute(
                    self.dialect.sql("SELECT version FROM {s}.schema_version")
                ).fetchall()
                version = checked_version(rows, where)
            if tables >= _TABLES and version == SCHEMA_VERSION:
                return  # current: no DDL, so a role without CREATE rights may use it
            db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            statements = self.dialect.tables() + self.dialect.sql(
                _SCHEMA + ";" + SEARCH_SCHEMA
            ).split(";")
            for statement in statements:
                if statement.strip():
                    db.execute(statement)
            if version < 2:
                turns = upgrade_from_version_1(db, self.schema)
                logger.info(
                    "%s: upgraded to version 2, %d turns numbered and indexed", where, turns
                )
            if tables and version < 3:
                for statement in self.dialect.sql(OWNER_BACKFILL).split(";"):
                    if statement.strip():
                        db.execute(statement)
                logger.info("%s: upgraded to version 3, blobs have owners", where)
            if not tables:
                db.execute(
                    self.dialect.sql("INSERT INTO {s}.schema_version VALUES (%s)"),
                    (SCHEMA_VERSION,),
                )
            elif version < SCHEMA_VERSION:
                db.execute(
                    self.dialect.sql("UPDATE {s}.schema_version SET version = %s"),
                    (SCHEMA_VERSION,),
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

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._connection() as db:
            return db.execute(self.dialect.sql(sql), params).fetchall()

    @contextmanager
    def _transaction(self, thread_id: str | None) -> Iterator[psycopg.Connection[Any]]:
        """A transaction holding the thread's advisory lock (serializes its writers; none for
        the caches, keyed by content)."""
        with self._connection() as db, db.transaction():
            if thread_id is not None:
                db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))", (thread_id,))
            yield db

    # --- lifetime ------------------------------------------------------------------------------

    def vacuum_full(self) -> None:
        """Rewrite the store's tables, their TOAST tables and indexes into new files
        (``VACUUM FULL``), so the bytes of deleted rows leave the table files now instead of
        lingering until autovacuum reuses their space. Each table is locked while it is
        rewritten (writers and readers wait). The write-ahead log and backups keep copies: see
        docs/deploying.md. Needs the tables' owner."""
        with self._connection() as db:  # autocommit: VACUUM cannot run in a transaction
            for table in sorted(_TABLES):
                db.execute(self.dialect.sql(f"VACUUM FULL {{s}}.{table}"))

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
