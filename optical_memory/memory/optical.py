"""``OpticalMemory``: a thread's memory in a store, a facade over packing and planning."""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optical_memory import renderers
from optical_memory.closing import Closing
from optical_memory.legibility import ModeLegibility, load_calibration
from optical_memory.memory.context import MemoryContext, MemoryPage, MemoryStats
from optical_memory.memory.packing import Packer
from optical_memory.memory.planning import ContextPlanner, RequestOverhead
from optical_memory.memory.render_ahead import RenderAhead
from optical_memory.memory.search import SearchHit, parse_query, rerank
from optical_memory.memory.threads import (
    export_thread,
    import_thread,
    stored_images,
    turn_image_blobs,
)
from optical_memory.messages import ImageRef, turns_from_messages
from optical_memory.modes import FADING_ORDER, Mode
from optical_memory.options import DEFAULT_TARGET, MemoryOptions, OptionValues
from optical_memory.rehearsal import rehearse
from optical_memory.renderers.page import Renderer
from optical_memory.schedule import DecaySchedule
from optical_memory.store import BlobOwner, PageRecord, Store, check_thread_id, open_store
from optical_memory.tokens import count_text_tokens
from optical_memory.turns import Turn, check_turn, turn_text

if TYPE_CHECKING:
    from typing import Unpack

logger = logging.getLogger("optical_memory")


#: The thread a memory opened without ``thread_id`` reads and writes.
DEFAULT_THREAD_ID = "default"


class OpticalMemory(Closing):
    """A thread's memory: turns stored durably, old ones packed onto pages that fade.

    The life of a turn::

        add() ─► stored as text ─► leaves the recent window (``keep_recent_turns`` newest stay)
              ─► pending: waits as text until the turns behind the window fill a page
              ─► packed onto a page, frozen ─► shown at the mode its age earns, fading with age
              ─► forgotten (hidden from the context; its text stays in the store for recall)

    See :mod:`optical_memory.memory.packing` and :mod:`optical_memory.memory.planning`.

    Args:
        path: SQLite file (created if missing), a ``postgresql://`` address (``postgres``
            extra), or None to keep everything in RAM. A
            :class:`~optical_memory.store.Store` instance is accepted too (another backend).
        thread_id: conversation to read and write; threads in one file never see each other.
            1 to :data:`~optical_memory.store.MAX_THREAD_ID_CHARS` characters of valid
            Unicode without control characters (the same on every store).
        schedule: the :class:`DecaySchedule` (default: ``DecaySchedule()``).
        renderer: a :class:`~optical_memory.renderers.Renderer`, or a name for
            :func:`optical_memory.renderers.create` (``"pil"``, the default, or ``"html"``,
            which needs the ``html`` extra). A renderer made from a name is closed with the
            memory.
        options: a :class:`~optical_memory.options.MemoryOptions`; its fields may also be
            given as keywords, which override the object's (``keep_recent_turns``, ``target``,
            ``verbatim_tokens``, ``render_ahead``, ``tuning``...). A memory reads
            ``keep_recent_turns`` (newest turns always kept as text, the recent window),
            ``target`` (the model the token counts are for; default ``"deepseek-ocr"``; the
            default renderer draws each mode at that target's own page side,
            :mod:`optical_memory.geometry`), ``verbatim_tokens``, ``render_ahead`` and
            ``tuning``; the others are for the agents layer.
    """

    def __init__(
        self,
        path: str | Path | Store | None = None,
        *,
        thread_id: str = DEFAULT_THREAD_ID,
        schedule: DecaySchedule | None = None,
        renderer: Renderer | str | None = None,
        options: MemoryOptions | None = None,
        **overrides: Unpack[OptionValues],
    ) -> None:
        check_thread_id(thread_id)
        self.options = MemoryOptions.of(options, overrides)
        if schedule is not None and not isinstance(schedule, DecaySchedule):
            raise TypeError(f"schedule must be a DecaySchedule, not {type(schedule).__name__}")
        self.thread_id = thread_id
        self.schedule = schedule or DecaySchedule()
        self.target = self.options.target or DEFAULT_TARGET
        self.renderer = renderers.resolve(renderer, self.target)
        self._owns_renderer = not isinstance(renderer, Renderer)
        #: Whether the renderer is the default one for the target (no renderer was given).
        self.default_renderer = renderer is None
        self.keep_recent_turns = self.options.keep_recent_turns
        self.verbatim_tokens = self.options.verbatim_tokens
        self.tuning = self.options.tuning
        self.store: Store = path if isinstance(path, Store) else open_store(path)
        self._lock = threading.RLock()
        self._packer = Packer(
            self.store, thread_id, self.renderer, self.keep_recent_turns, self.verbatim_tokens
        )
        self._planner = ContextPlanner(self._packer, self.schedule, self.target, self.tuning)
        self.render_ahead = RenderAhead(self) if self.options.render_ahead else None

    # --- writing -------------------------------------------------------------------------------

    def add(
        self,
        role: str,
        content: str,
        *,
        timestamp: datetime | None = None,
        images: Sequence[ImageRef] = (),
        key: str | None = None,
    ) -> Turn:
        """Store one turn durably and return it with its id; packs a page when one is full.

        ``images`` (from :func:`optical_memory.messages.message_to_turn`) are kept with the
        turn: their bytes, or their URL only; ``content`` holds their placeholders. ``key``
        (the id of the message the turn stores) is committed with the turn, so an agent that
        finds a message's turn by its id finds it even when an error hid the commit.
        """
        check_turn(role, content, timestamp)
        with self._lock:
            turn = self.store.add_turn(
                self.thread_id,
                role,
                content,
                timestamp,
                count_text_tokens(turn_text(role, content)),
                key=key,
            )
            if images:
                self._put_images(turn, images)
            self._packer.pack()
            self._after_add()
        return turn

    def _after_add(self) -> None:
        """Hook run after every add, under the lock (render-ahead queues new pages here)."""
        ahead = getattr(self, "render_ahead", None)
        if ahead is not None:
            ahead.schedule()

    def _put_images(self, turn: Turn, images: Sequence[ImageRef]) -> None:
        entries = [{**image.to_json(), "data": image.data} for image in images]
        owner = BlobOwner.thread(self.thread_id)
        for namespace, key, data in turn_image_blobs(turn.id or 0, entries):
            self.store.put_blob(namespace, self.thread_id, "", key, data, owner=owner)

    def turn_images(self, turn_id: int) -> list[ImageRef]:
        """The images stored with turn ``turn_id``, in order (numbered from 1 in its text)."""
        return [
            ImageRef(
                mime_type=entry["mime_type"],
                data=entry["data"],
                url=entry.get("url"),
                width=entry.get("width"),
                height=entry.get("height"),
                note=entry.get("note"),
            )
            for entry in stored_images(self.store, self.thread_id, turn_id)
        ]

    def page_images(self, page_id: int) -> list[ImageRef]:
        """The images whose placeholders page ``page_id`` prints, in order."""
        with self._lock:
            record = self._record(page_id)
            turns = {t.id: t for t in self.store.get_turns(self.thread_id, record.turn_ids)}
            found: list[ImageRef] = []
            for span in record.spans:
                images = self.turn_images(span.turn_id)
                text = turns[span.turn_id].content[span.start : span.end]
                found.extend(image for n, image in enumerate(images, 1) if f"[image {n}:" in text)
            return found

    def add_messages(self, messages: Iterable[Any]) -> list[Turn]:
        """Add ``{"role", "content"}`` dicts or LangChain messages, in order.

        Every message is checked before any is stored, so a bad one adds nothing. Content given
        as a list of blocks keeps its text blocks; images are kept with the turn and shown in
        its text as placeholders (see :mod:`optical_memory.messages`); other blocks are
        noted as ``[type]``; an AI message's tool calls are written out as
        ``[tool call] name({args})``.
        """
        return [
            self.add(turn.role, turn.content, timestamp=turn.timestamp, images=turn.images)
            for turn in turns_from_messages(messages)
        ]

    # --- reading -------------------------------------------------------------------------------

    def context(
        self, budget_tokens: int | None = None, *, overhead: RequestOverhead | None = None
    ) -> MemoryContext:
        """The memory to send with the next request; see :class:`MemoryContext`.

        With ``budget_tokens`` the total stays within it (pages at the modes that keep the most
        text expected legible, see :meth:`DecaySchedule.fit`; the oldest text dropped only when
        it alone is over); only the newest turn is never dropped, so the total exceeds the
        budget only when that turn alone does (``over_budget``).

        ``overhead`` plans a whole model request: the budget covers it too, and pages fade or
        are forgotten a batch at a time, only on the call that settles a batch (see
        :meth:`DecaySchedule.fit_batches`), so a provider's prompt cache keeps what was sent.
        """
        if budget_tokens is not None and (
            isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int)
        ):
            raise TypeError(f"budget_tokens must be an int or None, not {budget_tokens!r}")
        if budget_tokens is not None and budget_tokens < 0:
            raise ValueError(f"budget_tokens must be >= 0, not {budget_tokens}")
        with self._lock:
            self._packer.pack()
            return self._planner.context(budget_tokens, overhead)

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

    def set_image_costs(self, costs: Callable[[int, int, Mode], int] | None) -> None:
        """Price page images with ``costs(width, height, mode)`` in tokens (costs learnt from
        a model's bills) instead of the target's formula; ``None`` restores the formula."""
        with self._lock:
            self._planner.set_costs(costs)

    def set_legibility(self, table: dict[Mode, ModeLegibility] | None) -> None:
        """Plan with a model's calibrated legibility per mode (the table ``optical-memory
        calibrate`` measures; see :mod:`optical_memory.legibility`) in place of the priors: the
        modes a budget picks, and which pages carry their exact values as text. ``None``
        restores the priors."""
        with self._lock:
            self._planner.set_legibility(table)

    def use_calibration(self, model_key: str) -> dict[Mode, ModeLegibility]:
        """Plan with ``model_key``'s calibrated legibility from the store, if it was
        calibrated; returns the table ({}: not calibrated, the priors stay)."""
        table = load_calibration(self.store, model_key)
        if table:
            self.set_legibility(table)
        return table

    def page_image(self, page_id: int, mode: Mode | str) -> MemoryPage:
        """Page ``page_id`` drawn at ``mode`` (rendered once, then cached), whatever its tier."""
        mode = Mode.parse(mode)
        with self._lock:
            record = self._record(page_id)
            count = len(self._packer.refresh())
            return self._planner.memory_page(record, mode, count)

    def recall(self, page_id: int) -> str:
        """The exact text printed on page ``page_id``: one ``role: text`` line per piece."""
        with self._lock:
            record = self._record(page_id)
            self._packer.refresh()
            self._rehearse([record])
            return self._packer.page_text(record)

    def page_turns(self, page_id: int) -> list[Turn]:
        """The whole stored turns that page ``page_id`` prints (wholly or in part)."""
        with self._lock:
            record = self._record(page_id)
            return self.store.get_turns(self.thread_id, record.turn_ids)

    def turns(self, first: int, last: int | None = None) -> list[Turn]:
        """The exact stored turns numbered ``first`` to ``last`` (default: ``first``) in this
        thread, whatever their pages show; recalling them rehearses their pages (see
        :mod:`optical_memory.rehearsal`)."""
        last = first if last is None else last
        for name, value in (("first", first), ("last", last)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a turn number >= 1, not {value!r}")
        if last < first:
            raise ValueError(f"last ({last}) comes before first ({first}): pass first <= last")
        with self._lock:
            turns = self.store.turns_by_number(self.thread_id, first, last)
            if turns:
                ids = {turn.id for turn in turns}
                self._rehearse([r for r in self._packer.refresh() if ids & set(r.turn_ids)])
        return turns

    def search(self, query: str, limit: int = 5) -> list[SearchHit]:
        """The ``limit`` stored turns of this thread (forgotten ones too) that best answer
        ``query``, best first: a question, words, ``"quoted phrases"``, codes, dates or
        speakers (see :mod:`optical_memory.memory.search`)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("search needs a non-empty query string")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, not {limit!r}")
        parsed = parse_query(query)
        with self._lock:
            ranking, candidates = self.tuning.ranking, max(self.tuning.candidates, limit)
            matches = self.store.search_turns(self.thread_id, parsed.text, candidates, ranking)
            ranked = rerank(parsed, matches, ranking)[:limit]
            if not ranked:
                return []
            snippets = self.store.snippets(
                self.thread_id, parsed.text, [match.turn.id or 0 for match, _ in ranked]
            )
            records = self._packer.refresh()
            modes = self._modes_now(records)
        lasts = [record.spans[-1].turn_id for record in records]
        hits = []
        for match, score in ranked:
            turn = match.turn
            assert turn.id is not None and turn.number is not None
            # The first page whose last piece is this turn or a later one prints its start.
            index = bisect.bisect_left(lasts, turn.id)
            on_page = index < len(lasts) and turn.id in records[index].turn_ids
            hits.append(
                SearchHit(
                    turn=turn,
                    number=turn.number,
                    page_id=records[index].id if on_page else None,
                    mode=modes[index] if on_page else None,
                    score=score,
                    snippet=snippets.get(turn.id, turn.content[:200]),
                    own_match=match.own_match,
                )
            )
        return hits

    def _modes_now(self, records: list[PageRecord]) -> list[Mode | None]:
        """Each page's mode with no budget (by age, rehearsed), without reading any turn."""
        modes = self.schedule.modes(len(records))
        if not self.schedule.rehearsal:
            return modes
        recalls = self.store.recalls(self.thread_id)
        ids = [record.id for record in records]

        def cost(index: int, mode: Mode) -> int:
            return self._planner.vision_tokens(mode)

        return rehearse(modes, ids, recalls, self.schedule, cost, None)

    def _rehearse(self, records: Iterable[PageRecord]) -> None:
        """Note the recall of these pages when the schedule rehearses them."""
        ids = [record.id for record in records]
        if self.schedule.rehearsal and ids:
            self.store.record_recall(self.thread_id, ids, len(self._packer.records))

    @property
    def renders(self) -> int:
        """Pages drawn by this memory (the rest came from the store's render cache)."""
        return self._planner.renders

    @property
    def cache_hits(self) -> int:
        """Page images found in the store's render cache instead of drawn."""
        return self._planner.cache_hits

    def stats(self) -> MemoryStats:
        """Counts for this thread, without rendering anything."""
        with self._lock:
            self._packer.pack()
            plan = self._planner.plan(None)
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
                    vision += self._planner.vision_tokens(mode)
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

    # --- deleting, exporting, importing a thread ----------------------------------------------

    def delete_thread(self) -> int:
        """Delete this thread: its turns, pages, every cached render of its pages that no other
        thread shares and every blob it owns (see :class:`~optical_memory.store.BlobOwner`);
        none of its text stays in the store (on PostgreSQL after ``vacuum_full()``, see the
        deployment guide). Returns the number of turns deleted. This memory, and any other
        still open on the thread (in this process or another), go on with an empty thread."""
        with self._lock:
            deleted = self.store.delete_thread(self.thread_id)
            self._packer.reset()
            self._planner.reset()
        logger.info("thread %r deleted (%d turns)", self.thread_id, deleted)
        return deleted

    def export(self) -> dict[str, Any]:
        """Everything this thread owns as JSON-serializable data: turns with ids, timestamps and
        images, pages as spans of those turns, recalls and message keys (format:
        :mod:`optical_memory.memory.threads`)."""
        with self._lock:
            return export_thread(self.store, self.thread_id)

    def import_thread(self, data: object) -> list[Turn]:
        """Restore an :meth:`export` into this (empty) thread, pages and images and all; returns
        the turns with their new ids. The whole export is checked, then written in one
        transaction under the thread's lock: bad data, or a thread that holds anything (another
        import may have filled it first), raises ValueError and stores nothing."""
        with self._lock:
            turns = import_thread(self.store, self.thread_id, data)
            self._packer.reset()
            self._planner.reset()
        logger.info("thread %r imported (%d turns)", self.thread_id, len(turns))
        return turns

    # --- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store, and the renderer if this memory made it from a name."""
        if self.render_ahead is not None:
            self.render_ahead.close()
        self.store.close()
        close_renderer = getattr(self.renderer, "close", None)
        if self._owns_renderer and callable(close_renderer):
            close_renderer()

    def __repr__(self) -> str:
        return f"OpticalMemory(thread_id={self.thread_id!r}, target={self.target!r})"
