"""What the middleware and ``wrap``'s runnable share around their request builder.

Their lifetime (``close()``, ``with``), forgetting learnt costs (``reset_calibration()``) and
the accounting of their latest calls (``usage``, bounded to :data:`MAX_USAGE`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, TypeVar

from optical_memory.agents.usage import MAX_USAGE, CallUsage

if TYPE_CHECKING:
    from optical_memory.agents.request import MemoryRequestBuilder

_Front = TypeVar("_Front", bound="MemoryFront")


class MemoryFront:
    """Mixed into :class:`~optical_memory.agents.OpticalMemoryMiddleware` and
    :class:`~optical_memory.agents.runnable.OpticalMemoryRunnable`."""

    builder: MemoryRequestBuilder
    usage: list[CallUsage]
    """A :class:`CallUsage` per call, oldest first: the latest :data:`MAX_USAGE` calls."""

    def _start_front(self, builder: MemoryRequestBuilder) -> None:
        self.builder = builder
        self.usage = []
        self._usage_lock = threading.Lock()

    @property
    def last_usage(self) -> CallUsage | None:
        """Accounting of the latest model call, or ``None`` before the first."""
        return self.usage[-1] if self.usage else None

    def _record_usage(self, usage: CallUsage) -> None:
        with self._usage_lock:
            self.usage.append(usage)
            del self.usage[:-MAX_USAGE]  # bounded: the latest calls

    def _replace_usage(self, old: CallUsage, new: CallUsage) -> None:
        """``new`` (the same call, billed) where ``old`` is, if it is still kept."""
        if new is old:
            return
        with self._usage_lock:
            for index in range(len(self.usage) - 1, -1, -1):
                if self.usage[index] is old:
                    self.usage[index] = new
                    break

    def reset_calibration(self) -> int:
        """Forget the image costs learnt from bills (every model and target in the store):
        requests are priced by the published formulas again. Returns the tables reset."""
        return self.builder.reset_calibration()

    def close(self) -> None:
        """Let go of every conversation's in-process state (memories made for threads stop
        drawing ahead; the process's idle render threads end). The memory passed in and its
        store stay open. Also on leaving a ``with`` block."""
        self.builder.close()

    def __enter__(self: _Front) -> _Front:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
