"""Packing: turns that left the recent window become frozen pages.

Turns behind the window are laid out, in order, by the renderer's ``paginate`` (the same
breaks at every mode). While they fill more than one page, the first page is full: it is frozen
with exactly the pieces of turns it holds (a long turn may be split over pages; pages store
``(turn_id, start, end)`` spans) and never changes again, only its mode does. What does not fill
a page yet stays in the context as text. Capacity is the renderer's layout; a frozen page is
drawn from its pieces alone, each piece under its turn's role label.

When a page is frozen its verbatim text (the exact values it prints, bounded in tokens: see
:mod:`optical_memory.verbatim`) is fixed with it, in the store's blobs under its content hash,
so it never changes while the page lives, whatever later versions pick out of text.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from optical_memory.renderers.page import Renderer, Span
from optical_memory.store import (
    NewPage,
    PageRecord,
    PageSpan,
    Store,
    StoreDamagedError,
    StoreError,
)
from optical_memory.tokens import count_text_tokens
from optical_memory.turns import Turn, numbered_text
from optical_memory.verbatim import MAX_VERBATIM_TOKENS, VERBATIM_NAMESPACE, verbatim_text

logger = logging.getLogger("optical_memory")


def page_content_hash(pieces: Sequence[Turn]) -> str:
    """SHA-256 of exactly what a page prints: each piece's turn id, role, timestamp and text,
    and its number when it has one."""
    payload = json.dumps(
        [
            [p.id, p.role, p.timestamp.isoformat() if p.timestamp else None, p.content]
            + ([] if p.number is None else [p.number])
            for p in pieces
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Piece:
    """Characters ``start:end`` of a stored turn."""

    turn: Turn
    start: int
    end: int

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end == len(self.turn.content)

    def as_turn(self) -> Turn:
        """The piece as a Turn (same id and role) holding only its characters."""
        if self.whole:
            return self.turn
        return self.turn.model_copy(update={"content": self.turn.content[self.start : self.end]})


def select(pieces: Sequence[Piece], spans: Sequence[Span]) -> list[Piece]:
    """The sub-pieces that ``spans`` (indices and offsets into ``pieces``) select."""
    selected = []
    for span in spans:
        piece = pieces[span.turn]
        selected.append(Piece(piece.turn, piece.start + span.start, piece.start + span.end))
    return selected


def new_page(pieces: Sequence[Piece]) -> NewPage:
    """The record of a page printing ``pieces``: content hash, spans and text tokens."""
    turns = [piece.as_turn() for piece in pieces]
    text = "\n".join(numbered_text(t) for t in turns)
    return NewPage(
        content_hash=page_content_hash(turns),
        spans=tuple(PageSpan(p.turn.id or 0, p.start, p.end) for p in pieces),
        text_tokens=count_text_tokens(text),
    )


class Packer:
    """Freezes a thread's full pages and keeps its page records (oldest first) in memory.

    Not thread-safe on its own: :class:`~optical_memory.memory.OpticalMemory` calls it under
    its lock.
    """

    def __init__(
        self,
        store: Store,
        thread_id: str,
        renderer: Renderer,
        keep_recent_turns: int,
        verbatim_tokens: int = MAX_VERBATIM_TOKENS,
    ) -> None:
        self.store = store
        self.thread_id = thread_id
        self.renderer = renderer
        self.keep_recent_turns = keep_recent_turns
        self.verbatim_tokens = verbatim_tokens
        self.records: list[PageRecord] = []
        self._packed_at: tuple[int | None, int] | None = None  # (newest turn id, page count)
        #: Counts the times the thread was found deleted or replaced (the records were reset),
        #: so what others cache about it can follow.
        self.generation = 0

    def refresh(self) -> list[PageRecord]:
        """The thread's pages, including those other processes froze since the last look.

        The newest page already known is read again with them: when it is gone, the thread was
        deleted (and perhaps filled again) by another memory or process, and the records start
        over from what the store holds now."""
        if self.records:
            found = self.store.pages(self.thread_id, after_seq=len(self.records) - 2)
            if found and found[0].id == self.records[-1].id:
                self.records.extend(found[1:])
                return self.records
            logger.info("thread %r was deleted elsewhere: starting from the store", self.thread_id)
            self.reset()
        self.records.extend(self.store.pages(self.thread_id))
        return self.records

    def reset(self) -> None:
        """Forget the cached records (the thread was deleted or replaced)."""
        self.records.clear()
        self._packed_at = None
        self.generation += 1

    def pack(self) -> None:
        """Freeze every full page behind the recent window (see the module docstring)."""
        while True:
            self.refresh()
            after_seq = len(self.records) - 1
            window = self.store.newest_turns(self.thread_id, self.keep_recent_turns)
            if not window or len(window) < self.keep_recent_turns:
                return  # the whole thread still fits in the recent window
            # Nothing to do if neither the turns nor the pages changed since the last look.
            signature = (window[-1].id, len(self.records))
            if signature == self._packed_at:
                return
            pending = self.unpacked(window[0].id)
            layout = self.renderer.paginate([p.as_turn() for p in pending]) if pending else []
            if len(layout) < 2:
                self._packed_at = signature
                return
            new_pages: list[NewPage] = []
            printed: list[list[str]] = []
            for spans in layout[:-1]:
                pieces = select(pending, spans)
                # A page that opens mid-turn is drawn alone under a plain label, not the
                # "(continued)" one it had in the run: check it still fits on one page; if not,
                # freeze what does fit and lay out the rest again next round. (A page that opens
                # on a turn boundary lays out alone exactly as it did in the run.)
                overflows = False
                if pieces[0].start > 0:
                    alone = self.renderer.paginate([piece.as_turn() for piece in pieces])
                    overflows = len(alone) > 1
                    if overflows:
                        pieces = select(pieces, alone[0])
                new_pages.append(new_page(pieces))
                printed.append([piece.as_turn().content for piece in pieces])
                if overflows:
                    break
            # On False another process froze pages first: start again from its pages.
            if self.store.append_pages(self.thread_id, after_seq, new_pages):
                for page, texts in zip(new_pages, printed, strict=True):
                    self._fix_verbatim(page.content_hash, texts)
                logger.info(
                    "thread %r: froze pages %d-%d",
                    self.thread_id,
                    after_seq + 1,
                    after_seq + len(new_pages),
                )

    @property
    def _verbatim_identity(self) -> str:
        return f"max{self.verbatim_tokens}"

    def _fix_verbatim(self, content_hash: str, texts: Sequence[str]) -> str:
        """Compute and store the verbatim text of the page printing ``texts``; the first
        stored text of a content hash stays (another process may have fixed it first)."""
        text = verbatim_text(texts, self.verbatim_tokens)
        identity = self._verbatim_identity
        stored = self.store.get_blob(VERBATIM_NAMESPACE, content_hash, "-", identity)
        if stored is not None:
            return stored.decode("utf-8")
        try:
            self.store.put_blob(
                VERBATIM_NAMESPACE, content_hash, "-", identity, text.encode("utf-8")
            )
        except StoreDamagedError:
            raise
        except StoreError as error:  # disk full, read-only: sent now, fixed on a later call
            logger.warning("verbatim text of page %s not stored (%s)", content_hash[:12], error)
        return text

    def verbatim(self, record: PageRecord) -> str:
        """The exact values ``record`` prints, as fixed when it was frozen ("" when none, or
        when ``verbatim_tokens`` is 0). A page frozen before it had one gets it fixed now."""
        if self.verbatim_tokens <= 0:
            return ""
        identity = self._verbatim_identity
        stored = self.store.get_blob(VERBATIM_NAMESPACE, record.content_hash, "-", identity)
        if stored is not None:
            return stored.decode("utf-8")
        texts = [piece.content for piece in self.page_pieces(record)]
        return self._fix_verbatim(record.content_hash, texts)

    def unpacked(self, before_id: int | None) -> list[Piece]:
        """Turn pieces after the newest page (and before ``before_id``), oldest first."""
        after_id, head = 0, None
        if self.records:
            last = self.records[-1].spans[-1]
            after_id = last.turn_id
            turn = self.store.get_turns(self.thread_id, [last.turn_id])[0]
            if last.end < len(turn.content):
                head = Piece(turn, last.end, len(turn.content))
        if before_id is not None and after_id >= before_id:
            return []
        turns = self.store.turns_between(self.thread_id, after_id, before_id)
        pieces = [Piece(turn, 0, len(turn.content)) for turn in turns]
        return ([head] if head is not None else []) + pieces

    def page_pieces(self, record: PageRecord) -> list[Turn]:
        """What ``record`` prints: one Turn per piece, holding only that piece's characters."""
        turns = {t.id: t for t in self.store.get_turns(self.thread_id, record.turn_ids)}
        return [Piece(turns[s.turn_id], s.start, s.end).as_turn() for s in record.spans]

    def page_text(self, record: PageRecord) -> str:
        """The exact text ``record`` prints, one ``#number role: text`` line per piece."""
        return "\n".join(numbered_text(p) for p in self.page_pieces(record))
