"""Context planning: which pages a request shows, at which mode, within a budget.

Pages get modes by age from the :class:`~optical_memory.schedule.DecaySchedule`; with a budget
the schedule chooses the modes that keep the most text expected legible (each page worth its
text tokens times :func:`~optical_memory.legibility.page_legibility` at the mode, weighted by
recency); only when the text alone is over budget are all pages forgotten and the oldest text
trimmed. A page whose image would cost the target more tokens than its
text is given as text instead (the profitability gate), and is then worth all its tokens.
A page shown as an image at a size its reader is not known to read exactly
(:func:`~optical_memory.legibility.reads_exactly`) carries its verbatim text, the exact values
it prints, fixed when it was frozen; its cost counts those tokens too.
Images are rendered lazily, the first time a page is needed at a mode, and cached in the store
by (content hash, mode, renderer settings), so each page renders at most once per mode, across
processes too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optical_memory.legibility import ModeLegibility, page_legibility, reads_exactly
from optical_memory.memory.context import MemoryContext, MemoryPage, TextPage
from optical_memory.memory.packing import Packer
from optical_memory.memory.retention import prunable
from optical_memory.modes import Mode
from optical_memory.rehearsal import rehearse
from optical_memory.renderers.page import page_size
from optical_memory.schedule import DecaySchedule, Fit
from optical_memory.store import PageRecord, StoreDamagedError, StoreError
from optical_memory.targets import vision_tokens
from optical_memory.tokens import count_text_tokens
from optical_memory.turns import Turn, turn_text

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger("optical_memory")


@dataclass(frozen=True)
class RequestOverhead:
    """What a whole model request costs beyond the pages and the recent text, for planning it
    in one go: ``fixed`` tokens (system prompt, tool schemas, header, notes, the caller's
    images, tool-call envelopes) and ``per_page`` tokens for each page shown (its caption)."""

    fixed: int = 0
    per_page: int = 0


@dataclass(frozen=True)
class _Held:
    """A request plan kept between batch boundaries: the modes of the pages sent so far."""

    settled: int
    budget: int
    modes: list[Mode | None]


@dataclass
class Plan:
    """Each page's mode (None: forgotten) and whether it goes as text; the recent text."""

    records: list[PageRecord]
    modes: list[Mode | None]
    as_text: list[bool]
    recent: list[Turn]
    recent_tokens: list[int]
    text_kept: int


class ContextPlanner:
    """Plans and builds a thread's :class:`MemoryContext` over its :class:`Packer`.

    Counts ``renders`` (pages drawn) and ``cache_hits`` (drawings found in the store).
    """

    def __init__(self, packer: Packer, schedule: DecaySchedule, target: str) -> None:
        self.packer = packer
        self.schedule = schedule
        self.target = target
        self.renders = 0
        self.cache_hits = 0
        self._known_images: dict[tuple[str, Mode], tuple[int, int]] = {}
        self._token_memo: dict[tuple[Mode, int, int], int] = {}
        self._mode_tokens: dict[Mode, int] = {}  # at the renderer's page size
        self._pruned_at = 0  # page count when renders were last pruned
        self._generation = packer.generation  # the packer's, when this knew the thread
        self._costs: Callable[[int, int, Mode], int] | None = None
        self._render_lock = threading.Lock()
        #: Whether the target reads exact values at a mode (then pages go without verbatim).
        self.reads_exactly: Callable[[Mode], bool] = lambda mode: reads_exactly(target, mode)
        self._verbatim: dict[str, tuple[str, int]] = {}  # content hash: (text, tokens)
        self._legibility: dict[Mode, ModeLegibility] = {}  # calibrated, for the target's model
        self._held: _Held | None = None

    def set_legibility(self, table: dict[Mode, ModeLegibility] | None) -> None:
        """Plan with ``table`` (the model's calibrated legibility per mode) in place of the
        priors at the modes it measured; ``None`` or ``{}``: the priors again."""
        self._legibility = dict(table or {})
        exact = {mode: row.exact_accuracy for mode, row in self._legibility.items()}
        target = self.target
        self.reads_exactly = lambda mode: reads_exactly(target, mode, exact)

    def legibility(self, text_tokens: int, mode: Mode) -> float:
        """Expected share of a page's text the model reads at ``mode``: calibrated, else the
        prior (:func:`~optical_memory.legibility.page_legibility`)."""
        vision = self.vision_tokens(mode)
        if vision > text_tokens:
            return 1.0  # the page goes as text
        row = self._legibility.get(mode)
        if row is not None:
            return row.character_accuracy
        return page_legibility(text_tokens, mode, vision)

    def reset(self) -> None:
        """Forget what is known about the thread's renders (it was deleted or replaced)."""
        self._known_images.clear()
        self._pruned_at = 0
        self._generation = self.packer.generation
        self._held = None

    def set_costs(self, costs: Callable[[int, int, Mode], int] | None) -> None:
        """Price images with ``costs(width, height, mode)`` (e.g. costs learnt from a model's
        bills) instead of the target's formula; ``None``: the formula."""
        self._costs = costs
        self._token_memo.clear()
        self._mode_tokens.clear()
        # A request plan in force stays (new costs apply from the next batch, or sooner if
        # the request would cross its budget): learning costs is no reason to break a cache.

    def plan(self, budget_tokens: int | None, overhead: RequestOverhead | None = None) -> Plan:
        records = list(self.packer.refresh())
        if self._generation != self.packer.generation:  # the thread was deleted elsewhere
            self.reset()
        if len(records) > self._pruned_at:
            self.prune(self._pruned_at, len(records))
        pieces = self.packer.unpacked(None)
        store, thread_id = self.packer.store, self.packer.thread_id
        stored = store.turn_text_tokens(
            thread_id, [p.turn.id for p in pieces if p.whole and p.turn.id is not None]
        )
        recent = [piece.as_turn() for piece in pieces]
        recent_tokens = [
            stored[p.turn.id]
            if p.whole and p.turn.id in stored
            else count_text_tokens(turn_text(t.role, t.content))
            for p, t in zip(pieces, recent, strict=True)
        ]

        def gated_cost(index: int, mode: Mode) -> int:
            # The profitability gate: a page costs the cheaper of its image and its text.
            record = records[index]
            image = self.vision_tokens(mode)
            if image > record.text_tokens:
                return record.text_tokens
            return image + self.verbatim(record, mode)[1]

        def page_value(index: int, mode: Mode) -> float:
            # Text tokens expected legible.
            tokens = records[index].text_tokens
            return tokens * self.legibility(tokens, mode)

        page_cost: Callable[[int, Mode], int] = gated_cost
        room = budget_tokens  # for the pages and the text
        held = None
        if overhead is not None and budget_tokens is not None:
            held = self._request_plan(
                records, page_cost, page_value, recent_tokens, budget_tokens, overhead
            )
            room = max(0, budget_tokens - overhead.fixed)
            page_cost = _with_caption(page_cost, overhead.per_page)
        if held is not None:
            fit = Fit(held, len(recent_tokens), room or 0)  # the plan keeps no room spare
        else:
            fit = self.schedule.fit(len(records), page_cost, recent_tokens, room, page_value)
        if budget_tokens is not None and logger.isEnabledFor(logging.DEBUG):
            by_age = self.schedule.modes(len(records))
            logger.debug(
                "thread %r: fitted %d pages into %d tokens: %d demoted, %d forgotten, "
                "%d of %d text items dropped (total %d)",
                thread_id,
                len(records),
                budget_tokens,
                sum(m is not None and m != a for m, a in zip(fit.modes, by_age, strict=True)),
                sum(m is None and a is not None for m, a in zip(fit.modes, by_age, strict=True)),
                len(recent_tokens) - fit.text_kept,
                len(recent_tokens),
                fit.total,
            )
        modes = fit.modes
        if self.schedule.rehearsal:
            room = None if room is None else room - fit.total
            recalls = store.recalls(thread_id)
            ids = [record.id for record in records]
            modes = rehearse(modes, ids, recalls, self.schedule, page_cost, room)
        as_text = [
            mode is not None and self.vision_tokens(mode) > record.text_tokens
            for record, mode in zip(records, modes, strict=True)
        ]
        return Plan(records, modes, as_text, recent, recent_tokens, fit.text_kept)

    def _request_plan(
        self,
        records: list[PageRecord],
        page_cost: Callable[[int, Mode], int],
        page_value: Callable[[int, Mode], float],
        recent_tokens: list[int],
        budget: int,
        overhead: RequestOverhead,
    ) -> list[Mode | None] | None:
        """The pages' modes for a whole request within ``budget``, such that what was sent
        stays byte-identical for a prompt cache until the next batch settles.

        On the call that settles a batch the settled pages are planned a batch at a time
        (:meth:`DecaySchedule.fit_batches`), with headroom: room for the pages still to come
        in the batch at the faintest tier, and for a page of text waiting to fill the next
        page. Each page frozen after that is appended at the sharpest mode its tier allows
        that keeps the headroom, and keeps it. A plan is made again before the batch settles
        only if the request would cross the budget all the same. None: the text alone
        leaves no room for that (then :meth:`DecaySchedule.fit` trims page by page)."""
        count, batch = len(records), self.schedule.batch
        settled = count - count % batch
        ceiling = self.schedule.modes(count)
        cost = _with_caption(page_cost, overhead.per_page)
        faintest = self.schedule.tier_modes[-1]
        page_text = max((r.text_tokens for r in records), default=0)
        base = overhead.fixed + sum(recent_tokens)

        def spent(modes: list[Mode | None]) -> int:
            return base + sum(cost(i, m) for i, m in enumerate(modes) if m is not None)

        def append(modes: list[Mode | None]) -> list[Mode | None] | None:
            # The pages frozen since ``modes`` was planned, each the sharpest that leaves
            # room for the rest of the batch at the faintest tier and a page of text.
            for i in range(len(modes), count):
                after = batch - 1 - i % batch  # pages still to come in this batch
                reserve = after * (self.vision_tokens(faintest) + overhead.per_page) + page_text
                mode = ceiling[i]
                tiers = self.schedule.tier_modes
                candidates = [] if mode is None else list(tiers[tiers.index(mode) :])
                used = spent(modes)
                fitting = [m for m in candidates if used + cost(i, m) + reserve <= budget]
                if not fitting:
                    fitting = [m for m in candidates if used + cost(i, m) <= budget][-1:]
                if not fitting and mode is not None:
                    return None
                modes.append(fitting[0] if fitting else None)
            return modes

        held = self._held
        if held is not None and (held.settled, held.budget) == (settled, budget):
            modes = append(list(held.modes))
            if modes is not None and spent(modes) <= budget:
                self._held = _Held(settled, budget, modes)
                return modes
        reserve = (batch - 1) * (self.vision_tokens(faintest) + overhead.per_page) + page_text
        room = budget - base - reserve
        modes = self.schedule.fit_batches(count, cost, room, page_value)
        found = append(modes)
        if found is None or spent(found) > budget:
            self._held = None
            return None
        self._held = _Held(settled, budget, found)
        return found

    def context(
        self, budget_tokens: int | None, overhead: RequestOverhead | None = None
    ) -> MemoryContext:
        plan = self.plan(budget_tokens, overhead)
        pages: list[MemoryPage] = []
        text_pages: list[TextPage] = []
        count = len(plan.records)
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
                        text=self.packer.page_text(record),
                        text_tokens=record.text_tokens,
                        vision_tokens=self.vision_tokens(mode),
                    )
                )
            else:
                pages.append(self.memory_page(record, mode, count))
        kept = len(plan.recent) - plan.text_kept
        recent, dropped = plan.recent[kept:], plan.recent[:kept]
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
        text_tokens = sum(plan.recent_tokens[kept:]) + sum(p.text_tokens for p in text_pages)
        text_tokens += sum(p.verbatim_tokens for p in pages)
        return MemoryContext(
            pages=pages,
            text_pages=text_pages,
            recent=recent,
            text_tokens=text_tokens,
            vision_tokens=sum(p.vision_tokens for p in pages),
            replaced_text_tokens=sum(p.text_tokens for p in pages),
            forgotten_turn_ids=sorted(hidden),
            target=self.target,
            budget_tokens=budget_tokens,
        )

    def memory_page(self, record: PageRecord, mode: Mode, count: int) -> MemoryPage:
        """``record`` at ``mode``: drawn and stored on first use, else its stored size."""
        renderer, store = self.packer.renderer, self.packer.store
        key = renderer.settings_key
        png: bytes | None = None
        image = None
        size = self._known_images.get((record.content_hash, mode))
        if size is None:
            size = store.image_size(record.content_hash, mode.value, key)
            if size is None:
                image, png = self.render(record, mode)
                size = image.size
            else:
                self.cache_hits += 1
                self._known_images[(record.content_hash, mode)] = size
        content_hash = record.content_hash
        verbatim, verbatim_tokens = self.verbatim(record, mode)

        def load() -> bytes:
            data = store.get_image(content_hash, mode.value, key)
            if data is None:  # pruned, or never cached (the cache write failed): draw it again
                data = self.render(record, mode)[1]
            return data

        return MemoryPage(
            page_id=record.id,
            seq=record.seq,
            age=count - 1 - record.seq,
            mode=mode,
            turn_ids=record.turn_ids,
            spans=record.spans,
            vision_tokens=self.vision_tokens(mode, *size),
            text_tokens=record.text_tokens,
            width=size[0],
            height=size[1],
            content_hash=record.content_hash,
            renderer_key=key,
            _load_png=load,
            _png=png,
            _image=image,
            verbatim=verbatim,
            verbatim_tokens=verbatim_tokens,
        )

    def verbatim(self, record: PageRecord, mode: Mode) -> tuple[str, int]:
        """The verbatim text ``record`` goes with as an image at ``mode``, and its tokens:
        ``("", 0)`` when the target reads that size exactly."""
        if self.reads_exactly(mode):
            return "", 0
        known = self._verbatim.get(record.content_hash)
        if known is None:
            text = self.packer.verbatim(record)
            known = self._verbatim[record.content_hash] = (text, count_text_tokens(text))
        return known

    def render(self, record: PageRecord, mode: Mode) -> tuple[Image.Image, bytes]:
        """Draw ``record`` at ``mode`` and cache it: the image and its PNG bytes."""
        return self.draw(record.content_hash, self.packer.page_pieces(record), mode)

    def draw(self, content_hash: str, pieces: list[Turn], mode: Mode) -> tuple[Image.Image, bytes]:
        """Draw a page printing ``pieces`` at ``mode`` and cache it under ``content_hash``;
        returns the image and its PNG bytes. Safe to call from a second thread (the
        render-ahead one) while the memory serves a request."""
        renderer = self.packer.renderer
        started = time.perf_counter()
        with self._render_lock:  # one drawing at a time; encoding and storing run outside
            rendered = renderer.render(pieces, mode)
        if len(rendered) != 1:
            raise RuntimeError(
                f"page {content_hash[:12]} rendered as {len(rendered)} pages at {mode.value}: "
                "the renderer's layout changed since the page was packed; use the "
                "renderer settings the store was written with"
            )
        self.renders += 1
        image, png = rendered[0].image, rendered[0].png()
        logger.debug(
            "thread %r: rendered page %s at %s in %.0f ms",
            self.packer.thread_id,
            content_hash[:12],
            mode.value,
            (time.perf_counter() - started) * 1000,
        )
        key = renderer.settings_key
        if self._cache_image(content_hash, mode.value, key, *image.size, png):
            self._known_images[(content_hash, mode)] = image.size
        return image, png

    def _cache_image(
        self, content_hash: str, mode: str, key: str, width: int, height: int, png: bytes
    ) -> bool:
        """Keep a render in the store's cache; a failed write (disk full, read-only) is only a
        cache miss: logged, and the page is drawn again when next needed."""
        try:
            self.packer.store.put_image(content_hash, mode, key, width, height, png)
        except StoreDamagedError:
            raise
        except StoreError as error:
            logger.warning("render not cached (%s); it will be drawn again when needed", error)
            return False
        return True

    def prune(self, before: int, after: int) -> None:
        """Drop cached renders that pages can never be shown at again, now that the thread
        grew from ``before`` to ``after`` pages (see :mod:`optical_memory.memory.retention`)."""
        store, thread_id, records = self.packer.store, self.packer.thread_id, self.packer.records
        for found in prunable(self.schedule, before, after):
            modes = [mode.value for mode in found.modes]
            gone = store.prune_renders(thread_id, found.first_seq, found.last_seq, modes)
            for record in records[found.first_seq : found.last_seq + 1]:
                for mode in found.modes:
                    self._known_images.pop((record.content_hash, mode), None)
            logger.debug(
                "thread %r: pages %d-%d now %s; %d cached renders pruned",
                thread_id,
                found.first_seq,
                found.last_seq,
                "forgotten" if found.now is None else found.now.value,
                gone,
            )
        self._pruned_at = after

    def page_size(self, mode: Mode) -> tuple[int, int]:
        """A page's size at ``mode`` before it is drawn: the renderer's own ``page_size`` if it
        has one, else the size every renderer of this package uses."""
        size = getattr(self.packer.renderer, "page_size", None)
        if callable(size):
            width, height = size(mode)
            return int(width), int(height)
        return page_size(mode)

    def vision_tokens(self, mode: Mode, width: int | None = None, height: int | None = None) -> int:
        """What a page at ``mode`` (of ``width x height``, default: the renderer's size)
        costs the target."""
        if width is None or height is None:
            cached = self._mode_tokens.get(mode)
            if cached is not None and self._costs is None:
                return cached
            width, height = self.page_size(mode)
            self._mode_tokens[mode] = self.vision_tokens(mode, width, height)
            return self._mode_tokens[mode]
        if self._costs is not None:
            return self._costs(width, height, mode)
        key = (mode, width, height)
        if key not in self._token_memo:
            self._token_memo[key] = vision_tokens(width, height, self.target, mode)
        return self._token_memo[key]


def _with_caption(
    page_cost: Callable[[int, Mode], int], caption: int
) -> Callable[[int, Mode], int]:
    """``page_cost`` plus what each page shown adds to a request besides itself."""
    if not caption:
        return page_cost
    return lambda index, mode: page_cost(index, mode) + caption
