"""optical-memory: long-context memory for LLM agents, made of pictures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optical_memory.extras import lazy_exports
from optical_memory.modes import Mode
from optical_memory.targets import vision_tokens
from optical_memory.tokens import count_text_tokens
from optical_memory.turns import Turn

if TYPE_CHECKING:
    from optical_memory.memory import MemoryContext, OpticalMemory
    from optical_memory.schedule import DecaySchedule

__version__ = "0.1.0"
__all__ = [
    "DecaySchedule",
    "MemoryContext",
    "Mode",
    "OpticalMemory",
    "Turn",
    "count_text_tokens",
    "vision_tokens",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "OpticalMemory": "optical_memory.memory",
        "MemoryContext": "optical_memory.memory",
        "DecaySchedule": "optical_memory.schedule",
    },
)
