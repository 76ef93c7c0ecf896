"""Where memory lives: turns, frozen pages, rendered page images and other derived blobs.

:class:`Store` is the one small interface the memory talks to. :class:`SQLiteStore`
(``store/sqlite.py``) implements it with the standard library's ``sqlite3`` (one file, or RAM
with ``path=None``); :class:`~optical_memory.store.postgres.PostgresStore` (``postgres`` extra)
with one PostgreSQL database shared by many workers on many hosts. :func:`open_store` picks one
from a path or a ``postgresql://`` address. Both are built on one SQL layer: the statements they
share are written once (``sql.py``, ``search.py``, ``sql_threads.py``) and read through a
dialect (``dialect.py``, every difference in plain SQL); each store keeps its connections and
locks (``sqlite.py``, ``postgres.py``) and its full-text index (``sqlite_search.py``,
``postgres_search.py``).

Everything is scoped by ``thread_id`` except the two caches, which are keyed by a page's
*content hash*: a hash of exactly what is printed on the page, so identical content renders to
identical pixels and may share a cache entry without revealing anything another thread did not
already hold.

Schema (version 3)::

    schema_version(version)
    turns(id, thread_id, number, role, content, timestamp, text_tokens)  -- append only
    (full-text index)                -- each turn read with its neighbours
    pages(id, thread_id, seq, content_hash, spans, text_tokens)      -- frozen once written
    page_images(content_hash, mode, renderer, width, height, png)    -- render cache
    blobs(namespace, content_hash, mode, identity, data,             -- derived data, e.g.
          owner_kind, owner_thread, owner_page)                      -- encoded visual tokens
    recalls(thread_id, page_id, page_count)                          -- pages read back exactly

``number`` counts a thread's turns from 1: the number captions, search hits and page labels
show. The full-text index is SQLite's FTS5 or PostgreSQL's ``tsvector``, kept in the same
transaction as :meth:`Store.add_turn`. Every blob has one owner (:class:`BlobOwner`), which
says what deletes it: a thread's delete, retention of a page's mode, or nothing a thread does.
An older store is upgraded in place when opened (version 1: numbers assigned, index built;
version 2: blob owners filled in from their namespaces).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

from optical_memory.store.owners import (
    MESSAGE_KEY_NAMESPACE,
    MODEL_NAMESPACES,
    OWNER_BACKFILL,
    THREAD_NAMESPACES,
    BlobOwner,
    OwnerKind,
    blob_owner,
)
from optical_memory.store.ranking import RANKING, Ranking, TermHits
from optical_memory.turns import Turn

SCHEMA_VERSION = 4
#: The library's logger (no output unless the application configures logging).
logger = logging.getLogger("optical_memory")


class StoreError(RuntimeError):
    """The store cannot be opened or used as asked; the message says what to do."""


class StoreDamagedError(StoreError):
    """The store's file is damaged; the memory refuses further writes to it."""


class StoreUnavailableError(StoreError):
    """The database server cannot be reached (down, wrong address, refused login)."""


class ThreadNotEmptyError(ValueError):
    """An import was refused because the thread already holds turns or pages."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"thread {thread_id!r} already holds turns: import into a new thread_id, or call "
            "delete_thread() on it first (nothing was imported)"
        )


@dataclass(frozen=True)
class PageSpan:
    """Characters ``content[start:end]`` of the stored turn ``turn_id`` are printed on a page."""

    turn_id: int
    start: int
    end: int


@dataclass(frozen=True)
class PageRecord:
    """A frozen page: which pieces of which turns it holds, in order.

    ``seq`` counts the thread's pages from 0 (oldest); ``content_hash`` identifies what is printed
    on it (see :func:`optical_memory.memory.page_content_hash`); ``text_tokens`` is what the
    page's text would cost as text.
    """

    id: int
    thread_id: str
    seq: int
    content_hash: str
    spans: tuple[PageSpan, ...]
    text_tokens: int

    @cached_property
    def turn_ids(self) -> list[int]:
        """Ids of the turns printed (wholly or in part) on this page, oldest first."""
        ids: list[int] = []
        for span in self.spans:
            if not ids or ids[-1] != span.turn_id:
                ids.append(span.turn_id)
        return ids


@dataclass(frozen=True)
class TextQuery:
    """What a full-text search asks the store for, independent of the backend's syntax.

    ``words``: any of them may match (stemmed, case-folded); ``phrases``: word sequences
    that match where they appear in this order (quoted phrases, codes such as ``pine-653``
    split at punctuation); a turn matching any word or phrase is found.
    """

    words: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class TurnMatch:
    """One turn a full-text search found: ``score`` (higher is better) is its text relevance,
    read with its neighbours; ``phrase_match``: the turn's own text holds one of the query's
    phrases; ``own_match``: its own text holds a word or phrase of the query (False: it was
    found through its neighbours alone)."""

    turn: Turn
    score: float
    phrase_match: bool
    own_match: bool = True


@dataclass(frozen=True)
class NewPage:
    """A page about to be frozen (no id or seq yet)."""

    content_hash: str
    spans: tuple[PageSpan, ...]
    text_tokens: int


@dataclass(frozen=True)
class ImportedParts:
    """What an import writes once its turns have their new ids (see :meth:`Store.import_thread`):
    the pages (oldest first), the recalls as ``(page seq, page count)``, and the blobs the thread
    owns as ``(namespace, identity, data)``."""

    pages: Sequence[NewPage] = ()
    recalls: Sequence[tuple[int, int]] = ()
    blobs: Sequence[tuple[str, str, bytes]] = ()


#: A turn about to be stored: ``(role, content, timestamp, text_tokens)``.
NewTurn = tuple[str, str, datetime | None, int]
#: What an import writes once its turns have their ids (see :meth:`Store.import_thread`).
DeriveParts = Callable[[list[Turn]], ImportedParts]


@runtime_checkable
class Store(Protocol):
    """What :class:`~optical_memory.memory.OpticalMemory` needs from a store.

    Turns are append-only and ordered by ``id`` within a thread; pages are appended in ``seq``
    order and never change. Every method is atomic on its own.
    """

    def add_turn(
        self,
        thread_id: str,
        role: str,
        content: str,
        timestamp: datetime | None,
        text_tokens: int,
        *,
        key: str | None = None,
    ) -> Turn:
        """Append one turn durably (committed before it returns) and return it with its id and
        its number in the thread; its search index entry is written in the same transaction,
        and so is ``key`` (see :meth:`add_turns`)."""
        turns = [(role, content, timestamp, text_tokens)]
        return self.add_turns(thread_id, turns, keys=[key])[0]

    def turn_text_tokens(self, thread_id: str, turn_ids: Sequence[int]) -> dict[int, int]: ...

    def get_turns(self, thread_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """The thread's turns with these ids, in id order; ids of other threads are skipped."""
        ...

    def turns_by_number(self, thread_id: str, first: int, last: int) -> list[Turn]:
        """The thread's turns numbered ``first`` to ``last`` (inclusive), in order."""
        ...

    def search_turns(
        self, thread_id: str, query: TextQuery, limit: int, ranking: Ranking = RANKING
    ) -> list[TurnMatch]:
        """Up to ``limit`` of the thread's turns (forgotten ones too) matching ``query``, best
        first by text relevance over the thread's own statistics, each turn read with its
        neighbours (:func:`~optical_memory.store.ranking.rank_turns` of :meth:`term_hits`,
        under ``ranking``'s weights).
        The index is kept in the same transaction as :meth:`add_turn`."""
        ...

    def term_hits(self, thread_id: str, query: TextQuery) -> TermHits:
        """Which of the thread's turns hold each of ``query``'s terms (its words, then its
        phrases) in their own text: what :meth:`search_turns` ranks."""
        ...

    def snippets(self, thread_id: str, query: TextQuery, turn_ids: Sequence[int]) -> dict[int, str]:
        """Turn id → an excerpt of that turn's text around what matches ``query``, matched
        words in ``**`` (about :data:`~optical_memory.store.search.SNIPPET_WORDS` words)."""
        ...

    def record_recall(self, thread_id: str, page_ids: Sequence[int], page_count: int) -> None:
        """Note that these pages were read back exactly while the thread had ``page_count``
        pages (for rehearsal)."""
        ...

    def recalls(self, thread_id: str) -> dict[int, int]:
        """Each recalled page id → the thread's page count at its latest recall."""
        ...

    def newest_turns(self, thread_id: str, count: int) -> list[Turn]:
        """The ``count`` newest turns, oldest first."""
        ...

    def turns_between(self, thread_id: str, after_id: int, before_id: int | None) -> list[Turn]:
        """Turns with ``after_id < id < before_id`` (no upper bound when None), oldest first."""
        ...

    def iter_turns(self, thread_id: str, *, newest_first: bool = False) -> Iterator[Turn]: ...

    def count_turns(self, thread_id: str) -> int: ...

    def sum_text_tokens(self, thread_id: str) -> int:
        """Text tokens of all the thread's turns, as stored with each turn."""
        ...

    def pages(self, thread_id: str, *, after_seq: int = -1) -> list[PageRecord]:
        """The thread's pages with ``seq > after_seq``, oldest first."""
        ...

    def page(self, thread_id: str, page_id: int) -> PageRecord | None: ...

    def append_pages(self, thread_id: str, after_seq: int, pages: Sequence[NewPage]) -> bool:
        """Append ``pages`` if the thread's newest page still has ``seq == after_seq``
        (``-1``: none); return False, writing nothing, if another writer got there first."""
        ...

    def image_size(self, content_hash: str, mode: str, renderer: str) -> tuple[int, int] | None:
        """``(width, height)`` of a cached render, or None when it has not been rendered."""
        ...

    def get_image(self, content_hash: str, mode: str, renderer: str) -> bytes | None: ...

    def put_image(
        self, content_hash: str, mode: str, renderer: str, width: int, height: int, png: bytes
    ) -> None:
        """Cache a render; a second put of the same key keeps the first."""
        ...

    def get_blob(self, namespace: str, content_hash: str, mode: str, identity: str) -> bytes | None:
        """A derived blob (e.g. namespace ``"visual-tokens"``, identity = encoder + weights)."""
        ...

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
        """Keep a derived blob (a second put of the same key replaces it), owned by ``owner``
        (default: by its namespace, :func:`blob_owner`)."""
        ...

    def count_images(self) -> int: ...

    def add_turns(
        self, thread_id: str, turns: Sequence[NewTurn], *, keys: Sequence[str | None] = ()
    ) -> list[Turn]:
        """Append ``(role, content, timestamp, text_tokens)`` turns in one transaction.

        ``keys[i]`` (e.g. the id of the message turn ``i`` stores), when given, is written in
        the same transaction as the blob ``(MESSAGE_KEY_NAMESPACE, thread_id, "", key)``
        holding the turn's id as text: a retry after an error that hid the commit finds the
        turn by its key and stores nothing twice."""
        ...

    def import_thread(
        self, thread_id: str, turns: Sequence[NewTurn], derive: DeriveParts
    ) -> list[Turn]:
        """Write a whole thread in one transaction under the thread's lock: the turns, then what
        ``derive`` makes of them once they have ids. Raises :class:`ThreadNotEmptyError`, writing
        nothing, when the thread already holds turns or pages (so of concurrent imports into one
        thread exactly one stores anything)."""
        ...

    def thread_blobs(self, thread_id: str, namespace: str) -> dict[str, bytes]:
        """Identity -> data of the blobs in ``namespace`` that the thread owns."""
        ...

    def prune_renders(
        self, thread_id: str, first_seq: int, last_seq: int, modes: Sequence[str]
    ) -> int:
        """Drop cached renders at ``modes`` of the thread's pages with
        ``first_seq <= seq <= last_seq``, and the page-owned blobs at ``modes`` of those pages,
        except content another thread's pages share; return how many rows went."""
        ...

    def delete_thread(self, thread_id: str) -> int:
        """Delete the thread's turns, their search index entries, pages, recalls, every cached
        render of its pages that no other thread shares, and every blob it owns (owned by the
        thread, or by one of those pages), leaving none of its text in the store; return the
        turns deleted. Blobs owned by a model are kept."""
        ...

    def size_bytes(self) -> int:
        """Bytes the store occupies (file(s) on disk, or the database's size on the server)."""
        ...

    def thread_ids(self) -> list[str]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None:
        """Closes the store."""
        ...


#: Longest thread id, in characters, on every store (4 bytes each in UTF-8 at most, so an id
#: always fits PostgreSQL's index rows).
MAX_THREAD_ID_CHARS = 256


def check_thread_id(thread_id: object) -> str:
    """``thread_id`` if every store can hold it, else a ValueError/TypeError saying why: a
    non-empty str of at most :data:`MAX_THREAD_ID_CHARS` characters, valid Unicode (no lone
    surrogate), without control characters (NUL included)."""
    if not isinstance(thread_id, str):
        raise TypeError(f"a thread_id is a str, not {type(thread_id).__name__}")
    if not thread_id or len(thread_id) > MAX_THREAD_ID_CHARS:
        raise ValueError(
            f"a thread_id has 1 to {MAX_THREAD_ID_CHARS} characters, not {len(thread_id):,}: "
            "use a short key (e.g. a user or conversation id, or a hash of a longer one)"
        )
    for index, char in enumerate(thread_id):
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            raise ValueError(
                f"the thread_id holds a lone surrogate at index {index}, which is not valid "
                "Unicode text: decode the source with errors='replace' first"
            )
        if code < 0x20 or 0x7F <= code < 0xA0:
            raise ValueError(
                f"the thread_id holds the control character {char!r} at index {index}: use "
                "printable characters"
            )
    return thread_id


def is_postgres_address(location: object) -> bool:
    """True for ``postgresql://...`` and ``postgres://...`` addresses."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path | None = None) -> Store:
    """The store at ``location``: a ``postgresql://`` address opens a
    :class:`~optical_memory.store.postgres.PostgresStore` (``postgres`` extra), a path an
    SQLite file (created if missing), None an SQLite store in RAM."""
    if is_postgres_address(location):
        from optical_memory.extras import import_extra

        import_extra("psycopg_pool", "postgres")
        from optical_memory.store.postgres import PostgresStore

        return PostgresStore(str(location))
    if location is not None and not isinstance(location, (str, Path)):
        raise TypeError(
            f"a store location is a file path, a postgresql:// address or None, not "
            f"{type(location).__name__}"
        )
    return SQLiteStore(location)


# Imported last: the backends use the records above.
from optical_memory.store.sqlite import BUSY_TIMEOUT_S, SQLiteStore  # noqa: E402

logger.addHandler(logging.NullHandler())

__all__ = [
    "BUSY_TIMEOUT_S",
    "MAX_THREAD_ID_CHARS",
    "MESSAGE_KEY_NAMESPACE",
    "MODEL_NAMESPACES",
    "OWNER_BACKFILL",
    "SCHEMA_VERSION",
    "THREAD_NAMESPACES",
    "BlobOwner",
    "DeriveParts",
    "ImportedParts",
    "NewPage",
    "NewTurn",
    "OwnerKind",
    "PageRecord",
    "PageSpan",
    "SQLiteStore",
    "Store",
    "StoreDamagedError",
    "StoreError",
    "StoreUnavailableError",
    "TextQuery",
    "ThreadNotEmptyError",
    "TurnMatch",
    "blob_owner",
    "check_thread_id",
    "is_postgres_address",
    "logger",
    "open_store",
]
