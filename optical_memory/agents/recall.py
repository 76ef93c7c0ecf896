"""``recall_memory``: the tool an agent calls to find a turn and read its exact text."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from optical_memory.extras import import_extra

import_extra("langchain_core", "langchain")

from langchain_core.runnables.config import ensure_config  # noqa: E402
from langchain_core.tools import BaseTool, StructuredTool  # noqa: E402

from optical_memory.memory.search import (  # noqa: E402
    capped_query,
    describe_hit,
    describe_turns,
)

if TYPE_CHECKING:
    from optical_memory.memory import OpticalMemory

RECALL_DESCRIPTION = (
    "Read your optical memory exactly. Every turn on a memory page is labelled with its number "
    "(#308). Pass `turn` (a number; with `last_turn` for a range) to get those turns' exact "
    "text, `page` (the number in a page's caption) for a whole page's exact text and the images "
    'its turns came with, or `query` (a question or words, "quoted phrases", codes, dates, '
    "names) to find where something was said: ranked hits with turn numbers, pages and dates, "
    "including turns whose pages have faded away."
)
#: Largest turn or page number the store can hold (a 64-bit integer): a larger one, from a
#: confused model or a hostile caller, is answered as out of range, not passed to the database.
LARGEST_NUMBER = 2**63 - 1


def _short(value: int) -> str:
    digits = str(value)
    return digits if len(digits) <= 24 else f"{digits[:8]}... ({len(digits)} digits)"


def recall_memory_tool(
    memory: OpticalMemory | Callable[[str | None], OpticalMemory],
    *,
    search_limit: int = 5,
) -> BaseTool:
    """The ``recall_memory`` tool over ``memory``: ``turn`` / ``last_turn`` (turn numbers),
    ``page`` (a page id) or ``query`` (a ranked search, see :meth:`OpticalMemory.search`).

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

    def recall_memory(
        turn: int | None = None,
        last_turn: int | None = None,
        page: int | None = None,
        query: str | None = None,
    ) -> str | list[Any]:
        for name, value in (("turn", turn), ("page", page)):
            if value is not None and not 0 <= value <= LARGEST_NUMBER:
                return (
                    f"{name}={_short(value)} is out of range: turn and page numbers are "
                    "between 1 and the numbers printed on the memory pages."
                )
        thread_memory = memory_of_run()
        if turn is not None:
            return recall_turns(thread_memory, turn, last_turn)
        if page is not None:
            try:
                text = thread_memory.recall(page)
                images = thread_memory.page_images(page)
            except KeyError:
                return f"No page {page} in this conversation's memory."
            if images:
                # The page prints placeholders for the images its turns came with: give them back.
                return [{"type": "text", "text": text}, *(image.block() for image in images)]
            return text
        if query and query.strip():
            # The model chooses the argument: a runaway one is cut, and the answer says so.
            query, cut = capped_query(query)
            hits = thread_memory.search(query, limit=search_limit)
            lines = [describe_hit(hit) for hit in hits] or [f"No stored turn matches {query!r}."]
            return "\n".join([*lines, cut] if cut else lines)
        return (
            "Pass `turn` (a turn number from a page), `page` (a page number from a caption) "
            "or `query` (what to look for)."
        )

    return StructuredTool.from_function(
        recall_memory, name="recall_memory", description=RECALL_DESCRIPTION
    )


def recall_turns(memory: OpticalMemory, first: int, last: int | None = None) -> str:
    """The exact text of turns ``first`` to ``last`` (default: ``first``), one
    ``#number role (date): content`` block each; what the tool and the chat's ``/recall`` show.
    A range longer than the memory's :attr:`~optical_memory.options.Tuning.max_recalled_turns`
    is cut, and the answer says where to ask again."""
    last = first if last is None else last
    last = min(last, LARGEST_NUMBER)
    if first < 1 or last < first or first > LARGEST_NUMBER:
        return f"Turn numbers start at 1 and last_turn >= turn: got turn={first}, last_turn={last}."
    most = memory.tuning.max_recalled_turns
    cut = last - first + 1 > most
    turns = memory.turns(first, min(last, first + most - 1))
    if not turns:
        return f"No turn {first} in this conversation's memory."
    text = describe_turns(turns)
    if cut:
        text += f"\n\n[cut at {most} turns: ask again from turn {first + most}]"
    return text
