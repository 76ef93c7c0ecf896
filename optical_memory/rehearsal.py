"""Rehearsal: a page whose turns were just read back exactly is shown one tier sharper.

Recalled memories stay fresh: with ``DecaySchedule(rehearsal=N)``, a page the agent recalled
(:meth:`OpticalMemory.recall` of the page, or :meth:`OpticalMemory.turns` of a turn on it)
regains one tier of sharpness until ``N`` more pages have been frozen after the recall. The
store records recalls (:meth:`optical_memory.store.Store.record_recall`); :func:`rehearse` is
applied to the modes planning chose, never past a token budget. Off by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from optical_memory.modes import FADING_ORDER, Mode
from optical_memory.schedule import DecaySchedule


def sharper(schedule: DecaySchedule, mode: Mode) -> Mode:
    """The nearest tier of ``schedule`` sharper than ``mode`` (``mode`` when none is)."""
    rank = FADING_ORDER.index(mode)
    above = [m for m in schedule.tier_modes if FADING_ORDER.index(m) < rank]
    return above[-1] if above else mode


def rehearse(
    modes: Sequence[Mode | None],
    page_ids: Sequence[int],
    recalls: dict[int, int],
    schedule: DecaySchedule,
    page_cost: Callable[[int, Mode], int],
    room: int | None,
) -> list[Mode | None]:
    """``modes`` (oldest first, one per page of ``page_ids``) with each page recalled within
    the last ``schedule.rehearsal`` pages one tier sharper.

    ``recalls`` maps page id → the page count at its latest recall; ``page_cost(i, mode)`` is
    page ``i``'s cost at ``mode``; ``room`` is the budget left (None: no budget): the most
    recently recalled pages are sharpened first while what they add fits. Forgotten pages stay
    forgotten.
    """
    result = list(modes)
    if not schedule.rehearsal or not recalls:
        return result
    count = len(page_ids)
    fresh = sorted(
        (
            (recalls[page_id], index)
            for index, page_id in enumerate(page_ids)
            if page_id in recalls and count - recalls[page_id] < schedule.rehearsal
        ),
        reverse=True,
    )
    for _, index in fresh:
        mode = result[index]
        if mode is None:
            continue
        lifted = sharper(schedule, mode)
        extra = page_cost(index, lifted) - page_cost(index, mode)
        if room is not None:
            if extra > room:
                continue
            room -= extra
        result[index] = lifted
    return result
