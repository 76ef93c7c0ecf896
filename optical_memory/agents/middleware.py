"""``OpticalMemoryMiddleware``: optical memory for ``langchain.agents.create_agent``.

A sibling of LangChain's ``SummarizationMiddleware``: where that one replaces old messages by a
written summary in the agent's state, this one replaces them by pictures of the old turns, and
only in the request the model is sent. The agent's state and its checkpoints keep the text.

.. code-block:: python

    from langchain.agents import create_agent
    from optical_memory import OpticalMemory
    from optical_memory.agents import OpticalMemoryMiddleware

    memory = OpticalMemory("memory.sqlite")
    agent = create_agent(model, tools, middleware=[OpticalMemoryMiddleware(memory)])
    agent.invoke({"messages": [...]}, {"configurable": {"thread_id": "alice"}})
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from optical_memory.agents.recall import recall_memory_tool
from optical_memory.agents.request import CallUsage, MemoryRequestBuilder
from optical_memory.extras import import_extra

import_extra("langchain", "langchain")

from langchain.agents.middleware.types import (  # noqa: E402
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
)
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage  # noqa: E402

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from optical_memory.memory import OpticalMemory


class OpticalMemoryMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Shows the model its old turns as memory pages (images) and its recent turns as text.

    Before every model call, the messages of the run are added to the memory of the run's
    thread (``config["configurable"]["thread_id"]``; the memory's own thread when there is
    none), each message once. The request then carries one message with the thread's pages,
    oldest first, each under a one-line caption naming its turns, their age and the page's
    mode, followed by the recent window verbatim. Tool calls and their results stay together
    in the window. A page whose image would cost the target more tokens than its text is sent
    as text. Memory is keyed by thread, so it persists across invocations and, with a SQLite
    memory, across processes.

    After every call, ``usage`` gains a :class:`CallUsage` (text tokens, vision tokens, text
    tokens the images replaced), also at ``last_usage``.
    """

    def __init__(
        self,
        memory: OpticalMemory,
        *,
        keep_recent_turns: int = 6,
        budget_tokens: int | None = None,
        target: str | None = None,
        register_recall_tool: bool = True,
        cache_control: Mapping[str, str] | Literal["auto"] | None = "auto",
    ) -> None:
        """Wrap an agent's model calls in optical memory.

        Args:
            memory: The memory to read and write. Its store holds every thread; its own
                ``thread_id`` serves runs whose config names none.
            keep_recent_turns: Newest turns always sent as the run's own messages, verbatim.
                Older turns are sent the same way until enough of them fill a page (as many as
                the renderer's layout holds); the window also grows back to
                include the call of any tool result in it.
            budget_tokens: Most tokens one request may cost the target (system prompt, tool
                schemas, captions, images and recent text together). Old pages fade and are
                forgotten first, then the recent window shrinks; ``None`` means no limit.
            target: The model that reads the pages, for token accounting
                (``deepseek-ocr``, ``openai``, ``anthropic``, ``qwen2.5-vl``, ``gemini``).
                Defaults to the memory's target.
            register_recall_tool: Give the agent the ``recall_memory`` tool, which returns a
                page's exact text or searches the stored turns.
            cache_control: Anthropic cache breakpoint put on the memory message's last block;
                ``"auto"``: ``{"type": "ephemeral"}`` for the ``anthropic`` target, none for
                the others. With ``AnthropicPromptCachingMiddleware`` list this middleware
                first: ``middleware=[OpticalMemoryMiddleware(...),
                AnthropicPromptCachingMiddleware()]`` (four breakpoints: tools, system prompt,
                memory, conversation tail; the API allows no more).
        """
        super().__init__()
        self.memory = memory
        self.builder = MemoryRequestBuilder(
            memory,
            keep_recent_turns=keep_recent_turns,
            budget_tokens=budget_tokens,
            target=target,
            recall_tool="recall_memory" if register_recall_tool else None,
            cache_control=cache_control,
        )
        self.keep_recent_turns = keep_recent_turns
        self.budget_tokens = budget_tokens
        self.target = self.builder.target
        self.tools = [recall_memory_tool(self.builder.memory_for)] if register_recall_tool else []
        self.usage: list[CallUsage] = []

    @property
    def last_usage(self) -> CallUsage | None:
        """Accounting of the latest model call, or ``None`` before the first."""
        return self.usage[-1] if self.usage else None

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Send the model pages for the old turns; store what it answers."""
        thread_id = _thread_id()
        response = handler(self._paged(request, thread_id))
        self.builder.remember(thread_id, _messages_of(response))
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async twin of :meth:`wrap_model_call`; the store and renderer work runs in a worker
        thread so the event loop keeps serving."""
        thread_id = _thread_id()
        paged = await asyncio.to_thread(self._paged, request, thread_id)
        response = await handler(paged)
        await asyncio.to_thread(self.builder.remember, thread_id, _messages_of(response))
        return response

    def after_agent(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Store what the run produced after its last model call (e.g. a final tool result)."""
        self.builder.remember(_thread_id(), state["messages"])
        return None

    async def aafter_agent(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        await asyncio.to_thread(self.builder.remember, _thread_id(), state["messages"])
        return None

    def _paged(self, request: ModelRequest[Any], thread_id: str | None) -> ModelRequest[Any]:
        messages, usage = self.builder.build(
            thread_id,
            request.messages,
            system_messages=[] if request.system_message is None else [request.system_message],
            tools=request.tools,
        )
        self.usage.append(usage)
        return request.override(messages=cast("list[AnyMessage]", messages))


def _thread_id() -> str | None:
    """The running graph's ``configurable.thread_id``, or ``None`` outside a run."""
    from langgraph.config import get_config

    try:
        configurable = get_config().get("configurable", {})
    except RuntimeError:
        return None
    thread_id = configurable.get("thread_id")
    return None if thread_id is None else str(thread_id)


def _messages_of(response: ModelResponse[Any] | AIMessage | Any) -> list[BaseMessage]:
    if isinstance(response, AIMessage):
        return [response]
    result = getattr(response, "result", None)
    if result is None:  # ExtendedModelResponse
        result = getattr(getattr(response, "model_response", None), "result", [])
    return [m for m in result if isinstance(m, BaseMessage)]
