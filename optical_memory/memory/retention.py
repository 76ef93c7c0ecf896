"""Bounded storage: which cached renders a page can never be shown at again.

Pages only age (every newly frozen page makes all older ones one page older), and a budget only
demotes a page to fainter modes than its age earns, never to sharper ones. So once a page's age
passes a tier's end, its renders at that tier's mode and every sharper mode are dead weight; once
it is forgotten (``forget_after``), all of them are. :func:`prunable` lists them for the pages
whose age crossed a boundary while the thread grew from ``before`` to ``after`` pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from optical_memory.modes import FADING_ORDER, Mode
from optical_memory.rehearsal import sharper
from optical_memory.schedule import DecaySchedule


@dataclass(frozen=True)
class Prunable:
    """Pages ``first_seq..last_seq`` (inclusive) will never again be shown at ``modes``;
    ``now`` is the mode their age earns now (None: forgotten)."""

    first_seq: int
    last_seq: int
    modes: tuple[Mode, ...]
    now: Mode | None


def prunable(schedule: DecaySchedule, before: int, after: int) -> list[Prunable]:
    """What became unshowable while the thread went from ``before`` to ``after`` pages.

    ``before=0`` sweeps every page (a memory opening an existing thread). Ages count from the
    last batch (:meth:`DecaySchedule.modes`), and with rehearsal on a page keeps its renders one
    tier sharper than its age earns (a recall may lift it there).
    """
    before -= before % schedule.batch
    after -= after % schedule.batch
    boundaries: list[tuple[int, Mode | None]] = []  # (first age of the new mode, that mode)
    start = 0
    tiers = [(Mode.parse(mode), width) for mode, width in schedule.tiers]
    for (_, width), (following, _) in pairwise(tiers):
        start += width
        boundaries.append((start, following))
    if schedule.forget_after is not None:
        boundaries = [(age, m) for age, m in boundaries if age < schedule.forget_after]
        boundaries.append((schedule.forget_after, None))
    found: list[Prunable] = []
    for age, now in boundaries:
        # Ages reached: a page of seq s is ``count - 1 - s`` pages old.
        first = max(0, before - age)
        last = after - 1 - age
        if last < first:
            continue
        rank = len(FADING_ORDER) if now is None else FADING_ORDER.index(now)
        modes = FADING_ORDER[:rank]
        if now is not None and schedule.rehearsal:
            modes = tuple(mode for mode in modes if mode != sharper(schedule, now))
        if modes:
            found.append(Prunable(first, last, modes, now))
    return found
