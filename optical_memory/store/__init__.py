"""Where memory lives: turns, frozen pages, rendered page images and other derived blobs.

:class:`Store` is the one small interface the memory talks to; :class:`SQLiteStore` implements
it with the standard library's ``sqlite3`` (one file, or RAM with ``path=None``). Going beyond
one machine means writing another ``Store`` (a server database), nothing else.

Everything is scoped by ``thread_id`` except the two caches, which are keyed by a page's
*content hash*: a hash of exactly what is printed on the page, so identical content renders to
identical pixels and may share a cache entry without revealing anything another thread did not
already hold.

Schema (version 1)::

    schema_version(version)
    turns(id, thread_id, role, content, timestamp, text_tokens)      -- append only
    pages(id, thread_id, seq, content_hash, spans, text_tokens)      -- frozen once written
    page_images(content_hash, mode, renderer, width, height, png)    -- render cache
    blobs(namespace, content_hash, mode, identity, data)             -- e.g. encoded visual tokens
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Protocol, runtime_checkable

from optical_memory.turns import Turn

SCHEMA_VERSION = 1


class StoreError(RuntimeError):
    """The store cannot be opened or used as asked; the message says what to do."""


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
class NewPage:
    """A page about to be frozen (no id or seq yet)."""

    content_hash: str
    spans: tuple[PageSpan, ...]
    text_tokens: int


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
    ) -> Turn:
        """Append one turn durably (committed before it returns) and return it with its id."""
        ...

    def turn_text_tokens(self, thread_id: str, turn_ids: Sequence[int]) -> dict[int, int]: ...

    def get_turns(self, thread_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """The thread's turns with these ids, in id order; ids of other threads are skipped."""
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
        self, namespace: str, content_hash: str, mode: str, identity: str, data: bytes
    ) -> None: ...

    def count_images(self) -> int: ...

    def thread_ids(self) -> list[str]: ...

    def close(self) -> None: ...


# Imported last: the backends use the records above.
from optical_memory.store.sqlite import BUSY_TIMEOUT_S, SQLiteStore  # noqa: E402

__all__ = [
    "BUSY_TIMEOUT_S",
    "SCHEMA_VERSION",
    "NewPage",
    "PageRecord",
    "PageSpan",
    "SQLiteStore",
    "Store",
    "StoreError",
]
