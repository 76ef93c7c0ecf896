"""Render-ahead: the pages the next requests will show are drawn in the background.

When a page freezes, every page's age moves and most pages need a drawing at a new mode;
drawing them when a request asks for them stalls that request (tens of milliseconds a page).
Pages freeze when a turn is added, and the next turn's arrival freezes what is already known:
the turns waiting behind the recent window plus the oldest turns of the window, which the next
turns push out. So after each :meth:`~optical_memory.OpticalMemory.add` the memory asks the
process's render pool to work out the pages that the next turn and the one after it would
freeze (an answer and the next question may come back to back) and the mode every page will
then have, and to draw those not in the store yet, one at a time, outside the memory's lock (a
request waits at most for one page's layout in the renderer). The drawings land in the store's
render cache by content hash, where the request finds them. What a request is sent does not
change, only when its pages are drawn; a request that comes before the pool is done draws what
is missing itself. While a request is being built (:meth:`RenderAhead.hold`) nothing new is
started for that memory: Python runs one thread at a time, so drawing then would only slow
the request down.

One pool serves every memory of the process: at most :data:`WORKERS` threads, started when
there is work and gone once there is none (after :data:`IDLE_SECONDS`, or at once with
:func:`release_idle_workers`), so a process serving thousands of conversations holds a bounded
number of threads.
"""

from __future__ import annotations

import threading
from collections import deque
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
#: Threads of the process's render pool at most.
WORKERS = 2
#: Seconds an idle pool thread waits for work before it ends.
IDLE_SECONDS = 5.0


class _RenderPool:
    """The process's render-ahead threads: memories with work queue up, workers drain them."""

    def __init__(self, workers: int) -> None:
        self._cond = threading.Condition()
        self._queue: deque[RenderAhead] = deque()
        self._workers: set[threading.Thread] = set()
        self._max = workers
        self._release = False

    def submit(self, ahead: RenderAhead) -> None:
        with self._cond:
            if ahead not in self._queue:
                self._queue.append(ahead)
            if len(self._workers) < min(self._max, len(self._queue) + len(self._workers)):
                worker = threading.Thread(
                    target=self._work, name="optical-memory-render-ahead", daemon=True
                )
                self._workers.add(worker)
                worker.start()
            self._cond.notify()

    def release_idle(self) -> None:
        """Let the workers end as soon as nothing is queued, and wait for them (at most
        :data:`IDLE_SECONDS` twice)."""
        with self._cond:
            self._release = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._workers, timeout=2 * IDLE_SECONDS)
            self._release = False

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: bool(self._queue) or self._release, timeout=IDLE_SECONDS
                )
                if not self._queue:  # idle for IDLE_SECONDS, or asked to end
                    self._workers.discard(me)
                    self._cond.notify_all()
                    return
                ahead = self._queue.popleft()
            ahead._drain()


_POOL = _RenderPool(WORKERS)


def release_idle_workers() -> None:
    """End the render pool's idle threads now (they start again when there is work)."""
    _POOL.release_idle()


class RenderAhead:
    """The background drawing of one :class:`~optical_memory.OpticalMemory`, done by the
    process's render pool."""

    def __init__(self, memory: OpticalMemory) -> None:
        self.memory = memory
        self._wake = threading.Condition()
        self._pending = False
        self._busy = False
        self._closed = False
        self._held = 0
        self.drawn = 0

    def schedule(self) -> None:
        """Ask the pool to look again (after an add); returns at once."""
        with self._wake:
            if self._closed:
                return
            self._pending = True
            if self._held or self._busy:
                return  # submitted when the hold ends or the current pass finishes
        _POOL.submit(self)

    def wait(self) -> None:
        """Block until everything asked so far is drawn (or the drawer is closed)."""
        with self._wake:
            self._wake.wait_for(lambda: (not self._pending and not self._busy) or self._closed)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the drawing back while the body runs (a request being built): the page being
        drawn is finished, then nothing; adds made meanwhile are looked at afterwards."""
        with self._wake:
            self._held += 1
        try:
            yield
        finally:
            with self._wake:
                self._held -= 1
                resume = not self._held and self._pending and not self._busy
                resume = resume and not self._closed
                self._wake.notify_all()
            if resume:
                _POOL.submit(self)

    def close(self) -> None:
        """Stop drawing for this memory (a page being drawn is finished first)."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
            self._wake.wait_for(lambda: not self._busy)

    def _drain(self) -> None:
        """One pass (run by a pool worker): draw what the next requests will need."""
        with self._wake:
            if self._closed or self._held or self._busy or not self._pending:
                return
            self._pending, self._busy = False, True
        try:
            for content_hash, pieces, mode in self._jobs():
                with self._wake:
                    if self._closed or self._pending:
                        break  # closed, or a newer add changed what is needed
                    if self._held:
                        self._pending = True  # looked at again when the hold ends
                        break
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
                again = self._pending and not self._held and not self._closed
                self._wake.notify_all()
            if again:
                _POOL.submit(self)

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
