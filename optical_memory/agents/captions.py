"""Captions of the memory message: one line per page, or per run of pages of one long turn."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from optical_memory.memory import MemoryContext, MemoryPage, OpticalMemory, TextPage
from optical_memory.modes import MODE_WORDS


class TurnMarks:
    """The number and date of a thread's turns by id, each read from the store once: a stored
    turn's number and timestamp never change, and turn ids are never reused."""

    def __init__(self, memory: OpticalMemory) -> None:
        self.memory = memory
        self._marks: dict[int, tuple[int | None, datetime | None]] = {}

    def get(self, turn_ids: Iterable[int]) -> dict[int, tuple[int | None, datetime | None]]:
        """``{turn id: (number, timestamp)}`` of those turns that are stored."""
        wanted = sorted(set(turn_ids))
        missing = [tid for tid in wanted if tid not in self._marks]
        if missing:
            for turn in self.memory.store.get_turns(self.memory.thread_id, missing):
                if turn.id is not None:
                    self._marks[turn.id] = (turn.number, turn.timestamp)
        return {tid: self._marks[tid] for tid in wanted if tid in self._marks}


class Captions:
    """One line per page, or per run of pages that print one long turn, e.g.
    ``page 12 · turns 308–335 · 3 Nov 2026 · low resolution``: the page id (for recall), the
    turns' numbers in the thread (printed on the page too), their dates when the turns carry
    timestamps, and how the page is shown. Nothing in it depends on when it is asked: the same
    pages in the same modes get the same bytes, so a provider's prompt cache keeps them."""

    def __init__(self, context: MemoryContext, marks: TurnMarks) -> None:
        pages = context.memory
        self.turns = marks.get(
            tid for page in pages for tid in (page.turn_ids[0], page.turn_ids[-1])
        )
        # A run: consecutive pages shown alike that print nothing but one turn.
        self.runs: dict[int, list[MemoryPage | TextPage]] = {}
        run: list[MemoryPage | TextPage] = []
        for page in pages:
            if run and len(page.turn_ids) == 1 and self._key(page) == self._key(run[-1]):
                run.append(page)
                self.runs[page.page_id] = []
            else:
                run = [page]
                self.runs[page.page_id] = run

    @staticmethod
    def _key(page: MemoryPage | TextPage) -> tuple[object, ...]:
        return (tuple(page.turn_ids), type(page), page.mode)

    def caption(self, page: MemoryPage | TextPage) -> str:
        """The page's caption; ``""`` for a page that continues a run (its first page's
        caption covers it)."""
        run = self.runs.get(page.page_id, [page])
        if not run:
            return ""
        ids = [p.page_id for p in run]
        if len(ids) == 1:
            where = f"page {ids[0]}"
        elif ids == list(range(ids[0], ids[-1] + 1)):
            where = f"pages {ids[0]}–{ids[-1]}"
        else:
            where = "pages " + ", ".join(str(i) for i in ids)
        first, last = self.turns.get(page.turn_ids[0]), self.turns.get(page.turn_ids[-1])
        parts = [where]
        if first is not None and last is not None and first[0] and last[0]:
            parts.append(
                f"turn {first[0]}" if first[0] == last[0] else f"turns {first[0]}–{last[0]}"
            )
            when = _date_range(first[1], last[1])
            if when:
                parts.append(when)
        parts.append(MODE_WORDS[page.mode] if isinstance(page, MemoryPage) else "as text")
        return " · ".join(parts)


def _date_range(start: datetime | None, end: datetime | None) -> str:
    """``3 Nov 2026``, ``3–5 Nov 2026``, ``30 Oct – 2 Nov 2026``, ``30 Dec 2025 – 2 Jan 2026``;
    ``""`` without timestamps."""
    start, end = start or end, end or start
    if start is None or end is None:
        return ""
    a, b = start.date(), end.date()
    if a == b:
        return f"{a.day} {a:%b %Y}"
    if (a.year, a.month) == (b.year, b.month):
        return f"{a.day}–{b.day} {b:%b %Y}"
    if a.year == b.year:
        return f"{a.day} {a:%b} – {b.day} {b:%b %Y}"
    return f"{a.day} {a:%b %Y} – {b.day} {b:%b %Y}"
