"""What differs between the SQL the two stores speak, in one place.

The shared SQL layer (:mod:`optical_memory.store.sql`) writes each statement once, with ``?``
placeholders and its tables named ``{s}.table``; a :class:`Dialect` turns that text into what
one database reads, and says how values cross over: lists of ids, turn text, column types.
Upserts need no entry: both databases read ``INSERT ... ON CONFLICT ... DO UPDATE``.

What is not plain SQL stays with each store: connections and locking (SQLite's file lock,
PostgreSQL's per-thread advisory locks) in ``sqlite.py`` and ``postgres.py``, full-text search
(FTS5, ``tsvector``) in ``sqlite_search.py`` and ``postgres_search.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from optical_memory.turns import Turn

#: The tables both stores hold (``{id}``, ``{bytes}``, ``{text}``: the dialect's column types,
#: ``{s}``: the schema holding them). Turn numbers and the search index come with each store's
#: search schema; blob owners' indexes with the upgrade that adds their columns.
TABLES = """
CREATE TABLE IF NOT EXISTS {s}.schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.turns (
    id          {id},
    thread_id   TEXT    NOT NULL,
    role        {text}  NOT NULL,
    content     {text}  NOT NULL,
    timestamp   TEXT,
    text_tokens INTEGER NOT NULL,
    number      INTEGER
);
CREATE INDEX IF NOT EXISTS turns_by_thread ON {s}.turns (thread_id, id);
CREATE TABLE IF NOT EXISTS {s}.pages (
    id           {id},
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
    png          {bytes} NOT NULL,
    PRIMARY KEY (content_hash, mode, renderer)
);
CREATE TABLE IF NOT EXISTS {s}.blobs (
    namespace    TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    identity     TEXT    NOT NULL,
    data         {bytes} NOT NULL,
    owner_kind   TEXT    NOT NULL DEFAULT 'page',
    owner_thread TEXT,
    owner_page   TEXT,
    PRIMARY KEY (namespace, content_hash, mode, identity)
);
CREATE TABLE IF NOT EXISTS {s}.recalls (
    thread_id  TEXT    NOT NULL,
    page_id    BIGINT  NOT NULL,
    page_count INTEGER NOT NULL,
    PRIMARY KEY (thread_id, page_id)
)
"""

#: Largest value of an ``INTEGER`` column (seq, number) on PostgreSQL; SQLite's are wider.
MAX_INT = 2**31 - 1
#: Largest row id (``BIGINT`` on PostgreSQL, SQLite's 64-bit integers).
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Dialect:
    """How one database reads the shared SQL.

    ``schema``: the schema that qualifies ``{s}.table`` (None: tables unqualified);
    ``placeholder``: the driver's parameter mark for ``?``; ``ids_as_array``: an id list is one
    array parameter (``= ANY(?)``) instead of one mark per id (``IN (?, ...)``);
    ``text_as_bytes``: turns' role and content are stored as UTF-8 bytes (PostgreSQL's ``text``
    cannot hold the NUL characters turns may); ``id_column``, ``bytes_type``: column types;
    ``unique_violation``: the driver's error when an insert breaks a unique key. The defaults
    are SQLite's.
    """

    name: str = "sqlite"
    schema: str | None = None
    placeholder: str = "?"
    ids_as_array: bool = False
    text_as_bytes: bool = False
    id_column: str = "INTEGER PRIMARY KEY AUTOINCREMENT"
    bytes_type: str = "BLOB"
    unique_violation: tuple[type[BaseException], ...] = field(default=())

    def sql(self, text: str) -> str:
        """``text`` as this database reads it."""
        text = text.replace("{s}.", f"{self.schema}." if self.schema else "")
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def tables(self) -> list[str]:
        """The statements creating :data:`TABLES` (each ``IF NOT EXISTS``)."""
        text = TABLES.replace("{id}", self.id_column).replace("{bytes}", self.bytes_type)
        text = self.sql(text.replace("{text}", self.bytes_type if self.text_as_bytes else "TEXT"))
        return [statement for statement in text.split(";") if statement.strip()]

    def any_of(self, column: str, values: Sequence[object]) -> tuple[str, list[object]]:
        """A condition that ``column`` is one of ``values``, and its parameters."""
        if self.ids_as_array:
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def text(self, value: str) -> str | bytes:
        """A turn's role or content as it is stored."""
        return value.encode("utf-8") if self.text_as_bytes else value

    def turn(self, row: Sequence[object]) -> Turn:
        """A :class:`Turn` from ``(id, role, content, timestamp ISO text or None, number)``."""
        turn_id, role, content, stamp, number = row
        if self.text_as_bytes:
            role = bytes(role).decode("utf-8")  # type: ignore[call-overload]
            content = bytes(content).decode("utf-8")  # type: ignore[call-overload]
        return Turn(
            id=turn_id,  # type: ignore[arg-type]
            role=role,  # type: ignore[arg-type]
            content=content,  # type: ignore[arg-type]
            timestamp=datetime.fromisoformat(str(stamp)) if stamp is not None else None,
            number=number,  # type: ignore[arg-type]
        )


#: SQLite: one file, unqualified tables, ``?`` marks.
SQLITE = Dialect()


def postgres(schema: str, unique_violation: type[BaseException]) -> Dialect:
    """PostgreSQL through psycopg, tables in ``schema``."""
    return Dialect(
        name="postgresql",
        schema=schema,
        placeholder="%s",
        ids_as_array=True,
        text_as_bytes=True,
        id_column="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        bytes_type="BYTEA",
        unique_violation=(unique_violation,),
    )


__all__ = ["MAX_ID", "MAX_INT", "SQLITE", "TABLES", "Dialect", "postgres"]
