"""LangChain integration (the ``langchain`` extra): middleware for ``create_agent``, a wrapper
for any chat model, a chat-history adapter, the ``recall_memory`` tool, and a chat model over
the local DeepSeek-OCR.

Everything is imported on first use, so ``import optical_memory.agents`` costs nothing and the
error for a missing extra names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optical_memory.extras import lazy_exports

if TYPE_CHECKING:
    from optical_memory.agents.chat_model import ChatDeepSeekOCR
    from optical_memory.agents.history import OpticalChatMessageHistory
    from optical_memory.agents.middleware import OpticalMemoryMiddleware
    from optical_memory.agents.openai_pages import pages_to_openai_content
    from optical_memory.agents.options import MemoryOptions
    from optical_memory.agents.recall import recall_memory_tool
    from optical_memory.agents.runnable import wrap
    from optical_memory.agents.truncation import BudgetTooSmallError
    from optical_memory.agents.usage import CallUsage

__all__ = [
    "BudgetTooSmallError",
    "CallUsage",
    "ChatDeepSeekOCR",
    "MemoryOptions",
    "OpticalChatMessageHistory",
    "OpticalMemoryMiddleware",
    "pages_to_openai_content",
    "recall_memory_tool",
    "wrap",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "ChatDeepSeekOCR": "optical_memory.agents.chat_model",
        "pages_to_openai_content": "optical_memory.agents.openai_pages",
        "OpticalMemoryMiddleware": "optical_memory.agents.middleware",
        "wrap": "optical_memory.agents.runnable",
        "OpticalChatMessageHistory": "optical_memory.agents.history",
        "recall_memory_tool": "optical_memory.agents.recall",
        "CallUsage": "optical_memory.agents.usage",
        "BudgetTooSmallError": "optical_memory.agents.truncation",
        "MemoryOptions": "optical_memory.agents.options",
    },
)
