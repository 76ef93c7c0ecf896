"""Tail truncation: a newest message too long for the budget, sent as the tail that fits.

When the system prompt and tools leave the memory no room, the request is the newest message
alone, cut from the front to the longest tail within ``budget_tokens``, after a note that says
how much was left out (the message is stored whole; the recall tool finds it).
"""

from __future__ import annotations

from optical_memory.agents.composer import RequestComposer
from optical_memory.agents.usage import CallUsage
from optical_memory.agents.window import MEMORY_MESSAGE_SOURCE, message_tokens, with_tool_calls
from optical_memory.extras import import_extra
from optical_memory.tokens import count_text_tokens

import_extra("langchain_core", "langchain")

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage  # noqa: E402


class BudgetTooSmallError(ValueError):
    """The request cannot fit ``budget_tokens``: the system prompt and tool schemas alone
    (plus a note and one character of the newest message) exceed it."""


def tail_only(composer: RequestComposer) -> tuple[list[BaseMessage], CallUsage]:
    """The request of ``composer``'s newest message alone: as much of its tail as fits
    ``budget_tokens`` after the system prompt and tools, with a note that says what was left
    out (the message is stored whole). Raises :class:`BudgetTooSmallError` when not one
    character fits."""
    budget = composer.options.budget_tokens
    assert budget is not None
    newest = composer.live[-1] if composer.live else None
    known = None if newest is None else composer.thread.info.get(newest.id or "")
    if newest is None or known is None:
        raise _too_small(composer)
    text = newest.text
    envelope = with_tool_calls([newest], composer.live)[:-1]
    fixed = composer.fixed + sum(message_tokens(m) for m in envelope)

    tool = composer.recall_tool
    search = f"; the {tool} tool searches them" if tool else ""
    count = len(known.images)
    pictures = f"{count} image{'s' if count != 1 else ''}" if count else ""

    def request_for(keep: int) -> tuple[list[BaseMessage], int]:
        cut = len(text) - keep
        left = " and ".join(
            part for part in (f"first {cut} characters" if cut else "", pictures) if part
        )
        note = (
            f"The newest message is too long for this request's budget: its {left} are "
            f"left out here (stored in memory whole{search}). The rest follows."
        )
        memory_message = HumanMessage(
            content=note, additional_kwargs={"lc_source": MEMORY_MESSAGE_SOURCE}
        )
        tail = newest.model_copy(update={"content": text[cut:]})
        if isinstance(tail, AIMessage):
            tail.tool_calls = []
        tokens = fixed + count_text_tokens(note) + count_text_tokens(text[cut:])
        return [memory_message, *envelope, tail], tokens

    low, high = 0, len(text)
    while low < high:  # the longest tail that fits
        middle = (low + high + 1) // 2
        if request_for(middle)[1] <= budget:
            low = middle
        else:
            high = middle - 1
    request, tokens = request_for(low)
    if low == 0 or tokens > budget:
        raise _too_small(composer)
    usage = CallUsage(
        thread_id=composer.memory.thread_id,
        text_tokens=tokens,
        vision_tokens=0,
        replaced_text_tokens=0,
        pages=0,
        text_pages=0,
        messages=len(request) - 1,
        budget_tokens=budget,
        target=composer.target,
        model=composer.model_name,
        truncated_chars=len(text) - low,
    )
    return request, usage


def _too_small(composer: RequestComposer) -> BudgetTooSmallError:
    return BudgetTooSmallError(
        f"thread {composer.memory.thread_id!r}: the system prompt and tool schemas alone "
        f"exceed budget_tokens={composer.options.budget_tokens}: raise the budget, or "
        "shorten the system prompt or the tools' descriptions"
    )
