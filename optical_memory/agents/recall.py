"""``recall_memory``: the tool an agent calls to read a faded page's exact text."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from optical_memory.extras import import_extra

import_extra("langchain_core", "langchain")

from langchain_core.runnables.config import ensure_config  # noqa: E402
from langchain_core.tools import BaseTool, StructuredTool  # noqa: E402

if TYPE_CHECKING:
    from optical_memory.memory import OpticalMemory

RECALL_DESCRIPTION = (
    "Read your optical memory exactly. Pass `page` (the number in a memory page's caption) to "
    "get the exact text of that page's turns, or `query` to find stored turns containing those "
    "words, including turns whose pages have faded away."
)


def recall_memory_tool(
    memory: OpticalMemory | Callable[[str | None], OpticalMemory],
    *,
    search_limit: int = 5,
) -> BaseTool:
    """The ``recall_memory`` tool over ``memory``.

    Inside an agent run, the tool reads the thread named by the run's
    ``configurable.thread_id``: pass a callable ``thread_id -> OpticalMemory`` (as
    :class:`~optical_memory.agents.OpticalMemoryMiddleware` does) for that; a plain
    ``OpticalMemory`` always reads its own thread.
    """

    def memory_of_run() -> OpticalMemory:
        if not callable(memory):
            return memory
        thread_id = ensure_config().get("configurable", {}).get("thread_id")
        return memory(None if thread_id is None else str(thread_id))

    def recall_memory(page: int | None = None, query: str | None = None) -> str:
        thread_memory = memory_of_run()
        if page is not None:
            try:
                return thread_memory.recall(page)
            except KeyError:
                return f"No page {page} in this conversation's memory."
        if query:
            turns = thread_memory.search(query, limit=search_limit)
            if not turns:
                return f"No stored turn contains {query!r}."
            return "\n\n".join(f"[turn {turn.id}] {turn.role}: {turn.content}" for turn in turns)
        return "Pass `page` (a page number from a caption) or `query` (words to look for)."

    return StructuredTool.from_function(
        recall_memory, name="recall_memory", description=RECALL_DESCRIPTION
    )
