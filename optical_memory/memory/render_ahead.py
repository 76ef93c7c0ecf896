"""Render-ahead: the pages the next requests will show are drawn in a background thread.

When a page freezes, every page's age moves and most pages need a drawing at a new mode;
drawing them when a request asks for them stalls that request (tens of milliseconds a page).
Pages freeze when a turn is added, and the next turn's arrival freezes what is already known:
the turns waiting behind the recent window plus the oldest turns of the window, which the next
turns push out. So after each :meth:`~optical_memory.OpticalMemory.add` a daemon thread works
out the pages that the next turn and the one after it would freeze (an answer and the next
question may come back to back) and the mode every page will then have, and draws those not
in the store yet, one at a time, outside the memory's lock (a request waits at most for one
page's layout in the renderer). The drawings land in the store's render cache by content hash,
where the request finds them. What a request is sent does not change, only when its pages
are drawn; a request that comes before the thread is done draws what is missing itself.
While a request is being built (:meth:`RenderAhead.hold`) the thread starts nothing new:
Python runs one thread at a time, so drawing then would only slow the request down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

from optical_memory.memory.packing import page_content_hash, select
from optical_memory.modes import Mode
from optical_memory.turns import Turn

if TYPE_CHECKING:
    from optical_memory.memory.optical import OpticalMemory


#: How many turns ahead the pages are foreseen.
AHEAD = (1, 2)


class RenderAhead:
    """The background drawer of one :class:`~optical_memory.OpticalMemory`."""

    def __init__(self, memory: OpticalMemory) -> None:
        self.memory = memory
        self._wake = threading.Condition()
        self._pending = False
        self._busy = False
        self._closed = False
        self._held = 0
        self._thread: threading.Thread | None = None
        self.drawn = 0

    def schedule(self) -> None:
        """Ask the thread to look again (after an add); returns at once."""
        with self._wake:
            self._pending = True
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="optical-memory-render-ahead", daemon=True
                )
                self._thread.start()
            if not self._held:  # else woken when the hold ends
                self._wake.notify()

    def wait(self) -> None:
        """Block until the thread has drawn everything asked of it so far."""
        with self._wake:
            self._wake.wait_for(lambda: not self._pending and not self._busy)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the thread back while the body runs (a request being built): it finishes the
        page it is drawing, then waits; adds made meanwhile are looked at afterwards."""
        with self._wake:
            self._held += 1
        try:
            yield
        finally:
            with self._wake:
                self._held -= 1
                self._wake.notify_all()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: (self._pending and not self._held) or self._closed)
                if self._closed:
                    return
                self._pending, self._busy = False, True
            try:
                for content_hash, pieces, mode in self._jobs():
                    with self._wake:
                        self._wake.wait_for(lambda: not self._held or self._closed)
                        if self._closed or self._pending:
                            break  # closed, or a newer add changed what is needed
                    if not self._ready(content_hash, mode):
                        # Not under the memory's lock: a request waits at most for the
                        # renderer (one page's layout), never for the encoding or the store.
                        self.memory._planner.draw(content_hash, pieces(), mode)
                        self.drawn += 1
            except Exception:  # a closed store, a failed drawing: the request draws it itself
                pass
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _ready(self, content_hash: str, mode: Mode) -> bool:
        planner = self.memory._planner
        if (content_hash, mode) in planner._known_images:
            return True
        key = planner.packer.renderer.settings_key
        return planner.packer.store.image_size(content_hash, mode.value, key) is not None

    def _jobs(self) -> list[tuple[str, Callable[[], list[Turn]], Mode]]:
        """(content hash, pieces, mode) of every drawing the next requests will need: after
        the next turn, then after the one after it (a caller may send two turns back to back,
        an answer and the next question), newest pages first."""
        with self.memory._lock:
            packer, schedule = self.memory._planner.packer, self.memory.schedule
            records = list(packer.refresh())
            jobs: list[tuple[str, Callable[[], list[Turn]], Mode]] = []
            for ahead in AHEAD:
                upcoming = self._upcoming(ahead)
                count = len(records) + len(upcoming)
                modes = schedule.modes(count)
                for index in range(count - 1, -1, -1):
                    mode = modes[index]
                    if mode is None:
                        continue
                    if index < len(records):
                        record = records[index]
                        pieces = partial(packer.page_pieces, record)
                        jobs.append((record.content_hash, pieces, mode))
                    else:
                        turns = upcoming[index - len(records)]
                        jobs.append((page_content_hash(turns), partial(list, turns), mode))
            seen: set[tuple[str, Mode]] = set()
            unique = []
            for job in jobs:
                if (job[0], job[2]) not in seen and not self._ready(job[0], job[2]):
                    seen.add((job[0], job[2]))
                    unique.append(job)
            return unique

    def _upcoming(self, ahead: int) -> list[list[Turn]]:
        """The pages the next ``ahead`` turns would freeze: the turns waiting behind the window
        and the window's ``ahead`` oldest, which those turns push out (all known now)."""
        packer = self.memory._planner.packer
        keep = packer.keep_recent_turns
        if keep < ahead:
            return []
        window = packer.store.newest_turns(packer.thread_id, keep)
        if len(window) < keep:
            return []
        pending = packer.unpacked(window[ahead].id if ahead < keep else None)
        if not pending:
            return []
        layout = packer.renderer.paginate([p.as_turn() for p in pending])
        pages = []
        for spans in layout[:-1]:
            pieces = select(pending, spans)
            if pieces[0].start > 0:
                break  # a page opening mid-turn may lay out differently alone: not guessed
            pages.append([piece.as_turn() for piece in pieces])
        return pages
