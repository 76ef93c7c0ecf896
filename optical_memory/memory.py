"""``OpticalMemory``: a conversation's long-term memory made of page images that fade.

The life of a turn::

    add() ─► stored as text ─► leaves the recent window (``keep_recent_turns`` newest stay)
          ─► pending: waits as text until the turns behind the window fill a page
          ─► packed onto a page, frozen ─► shown at the mode its age earns, fading with age
          ─► forgotten (hidden from the context; its text stays in the store for recall/search)

**Packing rule.** Turns that left the recent window are laid out, in order, by the renderer's
``paginate`` (the same breaks at every mode). While they fill more than one page, the first page
is full: it is frozen with exactly the pieces of turns it holds (a long turn may be split over
pages; pages store ``(turn_id, start, end)`` spans) and never changes again, only its mode does.
What does not fill a page yet stays in the context as text, counted honestly. Capacity is the
renderer's: ``PillowRenderer()`` holds 40 lines of about 85 Latin characters (≈3,400 characters,
≈800 o200k tokens) on its 1024-px reference page; pass ``renderer=PillowRenderer(font_size=14)``
for denser pages (capacity grows with the inverse square of the font size). A frozen page is
drawn from its pieces alone, each piece under its turn's role label.

**Context.** Pages get modes by age from the :class:`~optical_memory.schedule.DecaySchedule`;
with a budget the schedule demotes, forgets, then trims the text. A page whose image would cost
the target more tokens than its text is given as text instead (the profitability gate). Images
are rendered lazily, the first time a page is needed at a mode, and cached in the store by
(content hash, mode, renderer settings), so each page renders at most once per mode, across
processes too.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optical_memory.modes import FADING_ORDER, Mode
from optical_memory.renderers.page import Renderer, Span, page_size
from optical_memory.schedule import DecaySchedule
from optical_memory.store import NewPage, PageRecord, PageSpan, SQLiteStore, Store
from optical_memory.tokens import TARGETS, count_text_tokens, vision_tokens
from optical_memory.turns import Turn

if TYPE_CHECKING:
    from PIL import Image

    from optical_memory.agents.runnable import OpticalMemoryRunnable

__all__ = ["MemoryContext", "MemoryPage", "MemoryStats", "OpticalMemory", "TextPage"]

_ROLE_OF_LANGCHAIN_TYPE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def turn_text(role: str, content: str) -> str:
    """How a turn (or a piece of one) reads as text, and what its text tokens count."""
    return f"{role}: {content}"


def page_content_hash(pieces: Sequence[Turn]) -> str:
    """SHA-256 of exactly what a page prints: each piece's turn id, role, timestamp and text."""
    payload = json.dumps(
        [
            [p.id, p.role, p.timestamp.isoformat() if p.timestamp else None, p.content]
            for p in pieces
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


# --- what context() returns -------------------------------------------------------------------


@dataclass
class MemoryPage:
    """A page shown as an image.

    ``age`` counts pages back from the newest (0); ``text_tokens`` is what its text would have
    cost; ``spans`` say which characters of which turns it prints. The image is read from the
    store the first time ``image`` or ``png()`` is used, so use pages before closing the memory.
    """

    page_id: int
    seq: int
    age: int
    mode: Mode
    turn_ids: list[int]
    spans: tuple[PageSpan, ...]
    vision_tokens: int
    text_tokens: int
    width: int
    height: int
    content_hash: str
    renderer_key: str
    _load_png: Callable[[], bytes] = field(repr=False, compare=False)
    _png: bytes | None = field(default=None, repr=False, compare=False)
    _image: Image.Image | None = field(default=None, repr=False, compare=False)

    def png(self) -> bytes:
        """The page image as PNG bytes (as rendered, cached)."""
        if self._png is None:
            self._png = self._load_png()
        return self._png

    @property
    def image(self) -> Image.Image:
        """The page image (PIL, RGB, ``width x height``)."""
        if self._image is None:
            from PIL import Image

            self._image = Image.open(BytesIO(self.png()))
            self._image.load()
        return self._image


@dataclass(frozen=True)
class TextPage:
    """A page given as text because its image would cost the target more than its text."""

    page_id: int
    seq: int
    age: int
    mode: Mode
    turn_ids: list[int]
    text: str
    text_tokens: int
    vision_tokens: int


@dataclass
class MemoryContext:
    """What to put in front of the model, oldest first.

    ``pages`` are images; ``text_pages`` are pages kept as text by the profitability gate;
    ``recent`` are the newest turns as text: the turns not yet packed onto a page followed by the
    recent window (the first may be the tail of a turn whose head is on the newest page; then its
    ``content`` is that tail). ``text_tokens`` counts all text here (``recent`` and
    ``text_pages``), ``vision_tokens`` the images, for ``target``. ``replaced_text_tokens`` is
    what the images stand for as text. ``forgotten_turn_ids`` lists turns with no character left
    in this context.
    """

    pages: list[MemoryPage]
    text_pages: list[TextPage]
    recent: list[Turn]
    text_tokens: int
    vision_tokens: int
    replaced_text_tokens: int
    forgotten_turn_ids: list[int]
    target: str
    budget_tokens: int | None

    @property
    def total_tokens(self) -> int:
        return self.text_tokens + self.vision_tokens

    @property
    def over_budget(self) -> bool:
        """True only when the newest turn alone exceeds the budget (it is always kept)."""
        return self.budget_tokens is not None and self.total_tokens > self.budget_tokens

    @property
    def memory(self) -> list[MemoryPage | TextPage]:
        """Image pages and text pages merged, oldest first (they precede ``recent``)."""
        return sorted([*self.pages, *self.text_pages], key=lambda page: page.seq)

    def recent_text(self) -> str:
        """The recent turns as text, one ``role: content`` per turn."""
        return "\n".join(turn_text(t.role, t.content) for t in self.recent)


@dataclass(frozen=True)
class MemoryStats:
    """Counts for one thread; ``pages_per_mode`` follows the schedule with no budget."""

    thread_id: str
    turns: int
    pages: int
    pages_per_mode: dict[str, int]
    pending_turns: int
    history_text_tokens: int
    paged_text_tokens: int
    vision_tokens: int
    tokens_saved: int
    renders: int
    cache_hits: int
    images_cached: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Plan:
    records: list[PageRecord]
    modes: list[Mode | None]
    as_text: list[bool]
    recent: list[Turn]
    recent_tokens: list[int]
    text_kept: int


# --- the memory -------------------------------------------------------------------------------


class OpticalMemory:
    """A thread's memory in a store; see the module docstring for how turns become pages.

    Args:
        path: SQLite file (created if missing), or None to keep everything in RAM. A
            :class:`~optical_memory.store.Store` instance is accepted too (another backend).
        thread_id: conversation to read and write; threads in one file never see each other.
        schedule: the :class:`DecaySchedule`; default: GUNDAM 2, LARGE 4, BASE 8, SMALL 16, TINY.
        renderer: a :class:`~optical_memory.renderers.Renderer`, ``"pil"`` (default) or
            ``"html"`` (needs the ``html`` extra).
        target: the model the token counts are for: one of
            :data:`optical_memory.tokens.TARGETS`.
        keep_recent_turns: newest turns always kept as text (the recent window).
        encoder: a ``DeepEncoder`` (``model`` extra) for :meth:`visual_tokens`: each page's
            visual tokens are then encoded once per mode and kept in the store.
    """

    def __init__(
        self,
        path: str | Path | Store | None = None,
        *,
        thread_id: str = "default",
        schedule: DecaySchedule | None = None,
        renderer: Renderer | str | None = None,
        target: str = "deepseek-ocr",
        keep_recent_turns: int = 6,
        encoder: Any = None,
    ) -> None:
        if not isinstance(thread_id, str) or not thread_id:
            raise ValueError(f"thread_id must be a non-empty str, not {thread_id!r}")
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
        if (
            isinstance(keep_recent_turns, bool)
            or not isinstance(keep_recent_turns, int)
            or keep_recent_turns < 0
        ):
            raise ValueError(f"keep_recent_turns must be an int >= 0, not {keep_recent_turns!r}")
        if schedule is not None and not isinstance(schedule, DecaySchedule):
            raise TypeError(f"schedule must be a DecaySchedule, not {type(schedule).__name__}")
        self.thread_id = thread_id
        self.schedule = schedule or DecaySchedule()
        self.renderer = _resolve_renderer(renderer)
        self.target = target
        self.keep_recent_turns = keep_recent_turns
        self.store: Store = path if isinstance(path, Store) else SQLiteStore(path)
        self._lock = threading.RLock()
        self._records: list[PageRecord] = []
        self._known_images: dict[tuple[str, Mode], tuple[int, int]] = {}
        self._packed_at: tuple[int | None, int] | None = None  # (newest turn id, page count)
        self._token_memo: dict[tuple[Mode, int, int], int] = {}
        self._mode_tokens: dict[Mode, int] = {}  # at the renderer's page size
        self.renders = 0
        self.cache_hits = 0
        self.encoder = encoder
        self._visual_cache: Any = None

    # --- writing -------------------------------------------------------------------------------

    def add(self, role: str, content: str, *, timestamp: datetime | None = None) -> Turn:
        """Store one turn durably and return it with its id; packs a page when one is full."""
        _check_turn(role, content, timestamp)
        with self._lock:
            turn = self.store.add_turn(
                self.thread_id,
                role,
                content,
                timestamp,
                count_text_tokens(turn_text(role, content)),
            )
            self._pack()
        return turn

    def add_messages(self, messages: Iterable[Any]) -> list[Turn]:
        """Add ``{"role", "content"}`` dicts or LangChain messages, in order.

        Every message is checked before any is stored, so a bad one adds nothing. Content given
        as a list of blocks keeps its text blocks; other blocks are noted as ``[type]``; an AI
        message's tool calls are written out as ``[tool call] name({args})``.
        """
        if isinstance(messages, (str, bytes, dict)):
            raise TypeError("add_messages takes a list of messages; use add(role, content) for one")
        pairs = [_message_to_turn(message, index) for index, message in enumerate(messages)]
        return [self.add(role, content, timestamp=stamp) for role, content, stamp in pairs]

    def _pack(self) -> None:
        """Freeze every full page behind the recent window (see the module docstring)."""
        while True:
            self._refresh_records()
            after_seq = len(self._records) - 1
            window = self.store.newest_turns(self.thread_id, max(1, self.keep_recent_turns))
            if not window or len(window) < self.keep_recent_turns:
                return  # the whole thread still fits in the recent window
            # Nothing to do if neither the turns nor the pages changed since the last look.
            signature = (window[-1].id, len(self._records))
            if signature == self._packed_at:
                return
            before = window[0].id if self.keep_recent_turns else None
            pending = self._unpacked(before)
            layout = self.renderer.paginate([p.as_turn() for p in pending]) if pending else []
            if len(layout) < 2:
                self._packed_at = signature
                return
            new_pages: list[NewPage] = []
            for spans in layout[:-1]:
                pieces = _select(pending, spans)
                # A page that opens mid-turn is drawn alone under a plain label, not the
                # "(continued)" one it had in the run: check it still fits on one page; if not,
                # freeze what does fit and lay out the rest again next round. (A page that opens
                # on a turn boundary lays out alone exactly as it did in the run.)
                overflows = False
                if pieces[0].start > 0:
                    alone = self.renderer.paginate([piece.as_turn() for piece in pieces])
                    overflows = len(alone) > 1
                    if overflows:
                        pieces = _select(pieces, alone[0])
                new_pages.append(_new_page(pieces))
                if overflows:
                    break
            # On False another process froze pages first: start again from its pages.
            self.store.append_pages(self.thread_id, after_seq, new_pages)

    def _refresh_records(self) -> None:
        self._records.extend(self.store.pages(self.thread_id, after_seq=len(self._records) - 1))

    def _unpacked(self, before_id: int | None) -> list[_Piece]:
        """Turn pieces after the newest page (and before ``before_id``), oldest first."""
        after_id, head = 0, None
        if self._records:
            last = self._records[-1].spans[-1]
            after_id = last.turn_id
            turn = self.store.get_turns(self.thread_id, [last.turn_id])[0]
            if last.end < len(turn.content):
                head = _Piece(turn, last.end, len(turn.content))
        if before_id is not None and after_id >= before_id:
            return []
        turns = self.store.turns_between(self.thread_id, after_id, before_id)
        pieces = [_Piece(turn, 0, len(turn.content)) for turn in turns]
        return ([head] if head is not None else []) + pieces

    # --- reading -------------------------------------------------------------------------------

    def context(self, budget_tokens: int | None = None) -> MemoryContext:
        """The memory to send with the next request; see :class:`MemoryContext`.

        With ``budget_tokens`` the total stays within it (pages demoted, then forgotten, then
        the oldest text dropped); only the newest turn is never dropped, so the total exceeds the
        budget only when that turn alone does (``over_budget``).
        """
        if budget_tokens is not None and (
            isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int)
        ):
            raise TypeError(f"budget_tokens must be an int or None, not {budget_tokens!r}")
        if budget_tokens is not None and budget_tokens < 0:
            raise ValueError(f"budget_tokens must be >= 0, not {budget_tokens}")
        with self._lock:
            self._pack()
            plan = self._plan(budget_tokens)
            pages: list[MemoryPage] = []
            text_pages: list[TextPage] = []
            count = len(plan.records)
            key = self.renderer.settings_key
            for record, mode, as_text in zip(plan.records, plan.modes, plan.as_text, strict=True):
                if mode is None:
                    continue
                if as_text:
                    text_pages.append(
                        TextPage(
                            page_id=record.id,
                            seq=record.seq,
                            age=count - 1 - record.seq,
                            mode=mode,
                            turn_ids=record.turn_ids,
                            text=self._page_text(record),
                            text_tokens=record.text_tokens,
                            vision_tokens=self._vision_tokens(mode),
                        )
                    )
                else:
                    pages.append(self._memory_page(record, mode, count, key))
            recent = plan.recent[len(plan.recent) - plan.text_kept :]
            dropped = plan.recent[: len(plan.recent) - plan.text_kept]
            hidden = {
                tid
                for r, m in zip(plan.records, plan.modes, strict=True)
                if m is None
                for tid in r.turn_ids
            }
            hidden |= {t.id for t in dropped if t.id is not None}
            if hidden:  # a turn split over pages may still show in part: then it is not gone
                shown = {t.id for t in recent if t.id is not None}
                for record, mode in zip(plan.records, plan.modes, strict=True):
                    if mode is not None:
                        shown.update(record.turn_ids)
                hidden -= shown
            forgotten = sorted(hidden)
            text_tokens = sum(plan.recent_tokens[len(plan.recent) - plan.text_kept :]) + sum(
                p.text_tokens for p in text_pages
            )
            return MemoryContext(
                pages=pages,
                text_pages=text_pages,
                recent=recent,
                text_tokens=text_tokens,
                vision_tokens=sum(p.vision_tokens for p in pages),
                replaced_text_tokens=sum(p.text_tokens for p in pages),
                forgotten_turn_ids=forgotten,
                target=self.target,
                budget_tokens=budget_tokens,
            )

    def _plan(self, budget_tokens: int | None) -> _Plan:
        self._refresh_records()
        records = list(self._records)
        pieces = self._unpacked(None)
        stored = self.store.turn_text_tokens(
            self.thread_id, [p.turn.id for p in pieces if p.whole and p.turn.id is not None]
        )
        recent = [piece.as_turn() for piece in pieces]
        recent_tokens = [
            stored[p.turn.id]
            if p.whole and p.turn.id in stored
            else count_text_tokens(turn_text(t.role, t.content))
            for p, t in zip(pieces, recent, strict=True)
        ]

        def page_cost(index: int, mode: Mode) -> int:
            # The profitability gate: a page costs the cheaper of its image and its text.
            return min(self._vision_tokens(mode), records[index].text_tokens)

        fit = self.schedule.fit(len(records), page_cost, recent_tokens, budget_tokens)
        as_text = [
            mode is not None and self._vision_tokens(mode) > record.text_tokens
            for record, mode in zip(records, fit.modes, strict=True)
        ]
        return _Plan(records, fit.modes, as_text, recent, recent_tokens, fit.text_kept)

    def _page_size(self, mode: Mode) -> tuple[int, int]:
        """A page's size at ``mode`` before it is drawn: the renderer's own ``page_size`` if it
        has one, else the size every renderer of this package uses."""
        size = getattr(self.renderer, "page_size", None)
        if callable(size):
            width, height = size(mode)
            return int(width), int(height)
        return page_size(mode)

    def _vision_tokens(
        self, mode: Mode, width: int | None = None, height: int | None = None
    ) -> int:
        if width is None or height is None:
            cached = self._mode_tokens.get(mode)
            if cached is not None:
                return cached
            width, height = self._page_size(mode)
            self._mode_tokens[mode] = self._vision_tokens(mode, width, height)
            return self._mode_tokens[mode]
        key = (mode, width, height)
        if key not in self._token_memo:
            self._token_memo[key] = vision_tokens(width, height, self.target, mode)
        return self._token_memo[key]

    def _memory_page(self, record: PageRecord, mode: Mode, count: int, key: str) -> MemoryPage:
        png: bytes | None = None
        image = None
        size = self._known_images.get((record.content_hash, mode))
        if size is None:
            size = self.store.image_size(record.content_hash, mode.value, key)
            if size is None:
                rendered = self.renderer.render(self._page_pieces(record), mode)
                if len(rendered) != 1:
                    raise RuntimeError(
                        f"page {record.id} rendered as {len(rendered)} pages at {mode.value}: "
                        "the renderer's layout changed since the page was packed; use the "
                        "renderer settings the store was written with"
                    )
                image = rendered[0].image
                png = rendered[0].png()
                size = image.size
                self.store.put_image(record.content_hash, mode.value, key, *size, png)
                self.renders += 1
            else:
                self.cache_hits += 1
            self._known_images[(record.content_hash, mode)] = size
        store, content_hash = self.store, record.content_hash

        def load() -> bytes:
            data = store.get_image(content_hash, mode.value, key)
            if data is None:
                raise RuntimeError(f"page image {content_hash[:12]} at {mode.value} is missing")
            return data

        return MemoryPage(
            page_id=record.id,
            seq=record.seq,
            age=count - 1 - record.seq,
            mode=mode,
            turn_ids=record.turn_ids,
            spans=record.spans,
            vision_tokens=self._vision_tokens(mode, *size),
            text_tokens=record.text_tokens,
            width=size[0],
            height=size[1],
            content_hash=record.content_hash,
            renderer_key=key,
            _load_png=load,
            _png=png,
            _image=image,
        )

    def _page_pieces(self, record: PageRecord) -> list[Turn]:
        turns = {t.id: t for t in self.store.get_turns(self.thread_id, record.turn_ids)}
        return [_Piece(turns[s.turn_id], s.start, s.end).as_turn() for s in record.spans]

    def _page_text(self, record: PageRecord) -> str:
        return "\n".join(turn_text(p.role, p.content) for p in self._page_pieces(record))

    def _record(self, page_id: int) -> PageRecord:
        if isinstance(page_id, bool) or not isinstance(page_id, int):
            raise TypeError(f"page_id is an int from context().pages, not {page_id!r}")
        record = self.store.page(self.thread_id, page_id)
        if record is None:
            raise KeyError(
                f"no page {page_id} in thread {self.thread_id!r}: use a page_id from "
                "context().pages of this thread"
            )
        return record

    def page_image(self, page_id: int, mode: Mode | str) -> MemoryPage:
        """Page ``page_id`` drawn at ``mode`` (rendered once, then cached), whatever its tier."""
        mode = Mode.parse(mode)
        with self._lock:
            record = self._record(page_id)
            self._refresh_records()
            return self._memory_page(record, mode, len(self._records), self.renderer.settings_key)

    def recall(self, page_id: int) -> str:
        """The exact text printed on page ``page_id``: one ``role: text`` line per piece."""
        with self._lock:
            return self._page_text(self._record(page_id))

    def page_turns(self, page_id: int) -> list[Turn]:
        """The whole stored turns that page ``page_id`` prints (wholly or in part)."""
        with self._lock:
            record = self._record(page_id)
            return self.store.get_turns(self.thread_id, record.turn_ids)

    def search(self, query: str, limit: int = 5) -> list[Turn]:
        """Stored turns of this thread (forgotten ones too) containing every word of ``query``,
        case-insensitively; turns holding the whole query as a phrase first, then newest first."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("search needs a non-empty query string")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, not {limit!r}")
        phrase = query.casefold().strip()
        words = phrase.split()
        phrase_hits: list[Turn] = []
        word_hits: list[Turn] = []
        with self._lock:
            for turn in self.store.iter_turns(self.thread_id, newest_first=True):
                text = turn.content.casefold()
                if phrase in text:
                    phrase_hits.append(turn)
                    if len(phrase_hits) >= limit:
                        break
                elif len(word_hits) < limit and all(word in text for word in words):
                    word_hits.append(turn)
        return (phrase_hits + word_hits)[:limit]

    def stats(self) -> MemoryStats:
        """Counts for this thread, without rendering anything."""
        with self._lock:
            self._pack()
            plan = self._plan(None)
            per_mode = {mode.value: 0 for mode in FADING_ORDER}
            per_mode["text"] = 0
            per_mode["forgotten"] = 0
            vision = paged = 0
            for record, mode, as_text in zip(plan.records, plan.modes, plan.as_text, strict=True):
                if mode is None:
                    per_mode["forgotten"] += 1
                elif as_text:
                    per_mode["text"] += 1
                else:
                    per_mode[mode.value] += 1
                    vision += self._vision_tokens(mode)
                    paged += record.text_tokens
            window = min(self.keep_recent_turns, len(plan.recent))
            return MemoryStats(
                thread_id=self.thread_id,
                turns=self.store.count_turns(self.thread_id),
                pages=len(plan.records),
                pages_per_mode=per_mode,
                pending_turns=len(plan.recent) - window,
                history_text_tokens=self.store.sum_text_tokens(self.thread_id),
                paged_text_tokens=paged,
                vision_tokens=vision,
                tokens_saved=paged - vision,
                renders=self.renders,
                cache_hits=self.cache_hits,
                images_cached=self.store.count_images(),
            )

    def threads(self) -> list[str]:
        """Every thread id with turns in this store."""
        return self.store.thread_ids()

    def page_blob(
        self,
        page: MemoryPage,
        namespace: str,
        identity: str,
        compute: Callable[[MemoryPage], bytes],
    ) -> bytes:
        """A value derived from ``page``'s image (e.g. encoded visual tokens), computed once.

        Cached in the store by (page content hash, mode, renderer settings + ``identity``);
        ``identity`` must change whenever ``compute``'s output would (encoder, weights, dtype).
        """
        full_identity = f"{page.renderer_key}|{identity}"
        with self._lock:
            cached = self.store.get_blob(
                namespace, page.content_hash, page.mode.value, full_identity
            )
            if cached is not None:
                return cached
            data = compute(page)
            self.store.put_blob(namespace, page.content_hash, page.mode.value, full_identity, data)
            return data

    # --- LangChain (the ``langchain`` extra) -------------------------------------------------

    def wrap(self, runnable: Any, **options: Any) -> OpticalMemoryRunnable:
        """``runnable`` (a LangChain chat model or Runnable of messages) with this memory in
        front of it: old turns go to it as page images, the newest as text. The same as
        :func:`optical_memory.agents.wrap` (``keep_recent_turns``, ``budget_tokens``,
        ``target``)."""
        from optical_memory.extras import import_extra

        runnable_module = import_extra("optical_memory.agents.runnable", "langchain")
        wrapped: OpticalMemoryRunnable = runnable_module.wrap(self, runnable, **options)
        return wrapped

    def visual_tokens(self, pages: Sequence[MemoryPage]) -> list[Any]:
        """Visual tokens ``[n, hidden]`` (torch) of each page from ``encoder``, encoded once per
        (page content, mode, renderer, encoder and weights) and kept in the store.

        ``DeepSeekOCR.page_encoder = memory.visual_tokens`` makes the local model use them.
        """
        if self.encoder is None:
            raise ValueError(
                "this OpticalMemory has no encoder: pass OpticalMemory(..., encoder=DeepEncoder"
                "(...)) or encoder=DeepSeekOCR.from_checkpoint(DIR).encoder"
            )
        if self._visual_cache is None or self._visual_cache.encoder is not self.encoder:
            from optical_memory.model.visual_cache import VisualTokenCache

            self._visual_cache = VisualTokenCache(self, self.encoder)
        return list(self._visual_cache(pages))

    # --- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> OpticalMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpticalMemory(thread_id={self.thread_id!r}, target={self.target!r})"


# --- helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
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


def _select(pieces: Sequence[_Piece], spans: Sequence[Span]) -> list[_Piece]:
    """The sub-pieces that ``spans`` (indices and offsets into ``pieces``) select."""
    selected = []
    for span in spans:
        piece = pieces[span.turn]
        selected.append(_Piece(piece.turn, piece.start + span.start, piece.start + span.end))
    return selected


def _new_page(pieces: Sequence[_Piece]) -> NewPage:
    turns = [piece.as_turn() for piece in pieces]
    text = "\n".join(turn_text(t.role, t.content) for t in turns)
    return NewPage(
        content_hash=page_content_hash(turns),
        spans=tuple(PageSpan(p.turn.id or 0, p.start, p.end) for p in pieces),
        text_tokens=count_text_tokens(text),
    )


def _check_turn(role: object, content: object, timestamp: object) -> None:
    if not isinstance(role, str):
        raise TypeError(f"role must be a str such as 'user', not {type(role).__name__}")
    if not role.strip():
        raise ValueError("role must not be empty: use 'user', 'assistant', 'tool' or a name")
    if isinstance(content, (bytes, bytearray)):
        raise TypeError("content must be a str, not bytes: decode it first (e.g. .decode('utf-8'))")
    if not isinstance(content, str):
        raise TypeError(f"content must be a str, not {type(content).__name__}")
    for text, what in ((role, "role"), (content, "content")):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"{what} holds a lone surrogate at index {error.start}, which is not valid "
                "Unicode text: decode the source with errors='replace' first"
            ) from None
    if timestamp is not None and not isinstance(timestamp, datetime):
        raise TypeError(f"timestamp must be a datetime or None, not {type(timestamp).__name__}")


def _message_to_turn(message: object, index: int) -> tuple[str, str, datetime | None]:
    if isinstance(message, dict):
        if "role" not in message or "content" not in message:
            raise ValueError(
                f"message {index} needs 'role' and 'content' keys, got {list(message)}"
            )
        role, content = message["role"], _content_text(message["content"], index)
        stamp = message.get("timestamp")
        _check_turn(role, content, stamp)
        return role, content, stamp
    langchain_type = getattr(message, "type", None)
    if isinstance(langchain_type, str) and hasattr(message, "content"):
        from optical_memory.extras import import_extra

        messages = import_extra("langchain_core.messages", "langchain")
        if isinstance(message, messages.BaseMessage):
            role = _ROLE_OF_LANGCHAIN_TYPE.get(message.type, message.type)
            content = _content_text(message.content, index)
            for call in getattr(message, "tool_calls", None) or []:
                arguments = json.dumps(call.get("args", {}), ensure_ascii=False, sort_keys=True)
                content += f"\n[tool call] {call.get('name')}({arguments})"
            content = content.lstrip("\n")
            _check_turn(role, content, None)
            return role, content, None
    raise TypeError(
        f"message {index} is a {type(message).__name__}: pass dicts with 'role' and 'content' "
        "or LangChain messages"
    )


def _content_text(content: object, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'block')}]")
            else:
                raise TypeError(
                    f"message {index} has a content block of type {type(block).__name__}"
                )
        return "\n".join(parts)
    raise TypeError(
        f"message {index} content must be a str or a list of blocks, not {type(content).__name__}"
    )


def _resolve_renderer(renderer: Renderer | str | None) -> Renderer:
    if renderer is None or renderer == "pil":
        from optical_memory.renderers.pil import PillowRenderer

        return PillowRenderer()
    if renderer == "html":
        from optical_memory.renderers import HtmlRenderer

        return HtmlRenderer()
    if isinstance(renderer, str):
        raise ValueError(f"unknown renderer {renderer!r}: use 'pil', 'html' or a Renderer")
    if not isinstance(renderer, Renderer):
        raise TypeError(
            f"renderer must be a Renderer (settings_key, render, paginate), not "
            f"{type(renderer).__name__}"
        )
    return renderer
