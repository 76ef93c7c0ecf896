"""The fit loop: a thread's request planned once, whole, within ``budget_tokens``.

The memory is told what the request adds besides its pages and recent text (system prompt,
tool schemas, header, the caller's images, a caption per page: a
:class:`~optical_memory.memory.RequestOverhead`) and plans all of it, fading or forgetting whole
batches of pages only on the call that settles a batch. What the overhead could not know before
the plan (a tool call's envelope, a caption longer than most) is measured on the composed
request and planned for once more.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from optical_memory.agents.composer import RequestComposer
from optical_memory.agents.usage import CallUsage

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage


def fit_request(
    composer: RequestComposer, budget: int | None
) -> tuple[list[BaseMessage], CallUsage] | None:
    """The request ``composer`` composes from its memory's context, within ``budget``
    (``None``: no budget, the whole context); ``None`` when the instructions alone leave the
    memory no room (the newest message's tail is all that may go)."""
    memory = composer.memory
    if budget is None:
        return composer.compose(memory.context())
    overhead = composer.overhead()
    if overhead.fixed >= budget:
        return None
    request, usage = composer.compose(memory.context(budget, overhead=overhead))
    if usage.total_tokens > budget:
        missed = usage.total_tokens - budget
        overhead = dataclasses.replace(overhead, fixed=overhead.fixed + missed)
        request, usage = composer.compose(memory.context(budget, overhead=overhead))
    return (request, usage) if usage.total_tokens <= budget else None
