"""A conversation's long-term memory made of page images that fade.

:class:`OpticalMemory` (``optical``) is the facade; ``packing`` freezes full pages behind the
recent window; ``planning`` chooses each page's mode within a budget and draws what a context
shows; ``context`` holds what a context and the stats are made of.
"""

from __future__ import annotations

from optical_memory.memory.context import MemoryContext, MemoryPage, MemoryStats, TextPage
from optical_memory.memory.optical import OpticalMemory
from optical_memory.memory.planning import RequestOverhead

__all__ = [
    "MemoryContext",
    "MemoryPage",
    "MemoryStats",
    "OpticalMemory",
    "RequestOverhead",
    "TextPage",
]
