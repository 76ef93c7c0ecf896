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
    middleware.memory("alice").stats()   # the thread's memory: pages, modes, tokens saved
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from optical_memory.agents.front import MemoryFront
from optical_memory.agents.recall import recall_memory_tool
from optical_memory.agents.request import MemoryRequestBuilder
from optical_memory.agents.usage import CallUsage
from optical_memory.extras import import_extra
from optical_memory.options import MemoryOptions, OptionValues

import_extra("langchain", "langchain")

from langchain.agents.middleware.types import (  # noqa: E402
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
)
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage  # noqa: E402

logger = logging.getLogger("optical_memory")

if TYPE_CHECKING:
    from typing import Unpack

    from langgraph.runtime import Runtime

    from optical_memory.memory import OpticalMemory


class OpticalMemoryMiddleware(MemoryFront, AgentMiddleware[AgentState[Any], Any, Any]):
    """Shows the model its old turns as memory pages (images) and its recent turns as text.

    Before every model call, the messages of the run are added to the memory of the run's
    thread (``config["configurable"]["thread_id"]``; the memory's own thread, with a warning
    once, when there is none), each message once, images included. The request then carries
    one message with the thread's pages, oldest first, each under a caption, followed by the
    recent window verbatim (see :mod:`optical_memory.agents.request`). Token accounting follows
    the model each call goes to (its class and model name give the target) and its bills.
    ``memory(thread_id)`` is the memory of one thread (``stats()``, ``recall``, ``search``).

    After every call, ``usage`` gains a :class:`CallUsage` (counted text and vision tokens,
    the text the images replaced, images and bytes, and what the model billed), also at
    ``last_usage``; it keeps the latest :data:`~optical_memory.agents.usage.MAX_USAGE`.
    ``close()`` (or a ``with`` block) lets the in-process state of every conversation go.
    """

    def __init__(
        self,
        memory: OpticalMemory,
        options: MemoryOptions | None = None,
        **overrides: Unpack[OptionValues],
    ) -> None:
        """Wrap an agent's model calls in optical memory.

        Args:
            memory: The memory to read and write. Its store holds every thread; its own
                ``thread_id`` serves runs whose config names none.
            options: A :class:`~optical_memory.agents.MemoryOptions` (default: the memory's
                own, ``memory.options``); its fields may also be given as keywords
                (``keep_recent_turns``, ``budget_tokens``, ``target``,
                ``register_recall_tool``, ``calibrate``, ``cache_control``, ...), which win.
                With ``AnthropicPromptCachingMiddleware`` list this middleware first:
                ``middleware=[OpticalMemoryMiddleware(...), AnthropicPromptCachingMiddleware()]``
                (four breakpoints: tools, system prompt, memory, conversation tail; the API
                allows no more).
        """
        super().__init__()
        self.memory_ = memory
        self.options = MemoryOptions.of(options or memory.options, overrides)
        self._start_front(MemoryRequestBuilder(memory, self.options, recall_tool="recall_memory"))
        self.keep_recent_turns = self.options.keep_recent_turns
        self.budget_tokens = self.options.budget_tokens
        self.target = self.builder.target
        self._recall = recall_memory_tool(self.builder.memory_for)
        self.tools = [] if self.options.register_recall_tool is False else [self._recall]
        self._told_no_tools = False

    def memory(self, thread_id: str | None = None) -> OpticalMemory:
        """The memory of ``thread_id`` (``None``: the memory's own thread), as the agent's
        runs fill it: ``stats()``, ``context()``, ``recall(page)``, ``search(words)``."""
        return self.builder.memory_for(thread_id)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Send the model pages for the old turns; store what it answers."""
        thread_id = _thread_id()
        paged, usage = self._paged(request, thread_id)
        response = handler(paged)
        self._answered(thread_id, usage, request.model, response)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async twin of :meth:`wrap_model_call`; the store and renderer work runs in a worker
        thread so the event loop keeps serving."""
        thread_id = _thread_id()
        paged, usage = await asyncio.to_thread(self._paged, request, thread_id)
        response = await handler(paged)
        await asyncio.to_thread(self._answered, thread_id, usage, request.model, response)
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

    def _paged(
        self, request: ModelRequest[Any], thread_id: str | None
    ) -> tuple[ModelRequest[Any], CallUsage]:
        tools = list(request.tools)
        if self._recall in tools and not self._can_bind_tools(request.model):
            tools.remove(self._recall)
        messages, usage = self.builder.build(
            thread_id,
            request.messages,
            system_messages=[] if request.system_message is None else [request.system_message],
            tools=tools,
            model=request.model,
            offers_recall=self._recall in tools,
        )
        self._record_usage(usage)
        return request.override(messages=cast("list[AnyMessage]", messages), tools=tools), usage

    def _answered(self, thread_id: str | None, usage: CallUsage, model: Any, response: Any) -> None:
        answer = _messages_of(response)
        self.builder.remember(thread_id, answer)
        billed = self.builder.record_bill(usage, answer[-1] if answer else None, model)
        self._replace_usage(usage, billed)

    def _can_bind_tools(self, model: Any) -> bool:
        """Whether ``model`` implements ``bind_tools``; with ``register_recall_tool=None``, a
        model that does not gets no recall tool (said once in the log)."""
        if self.options.register_recall_tool is True:
            return True
        implemented = not (
            isinstance(model, BaseChatModel) and type(model).bind_tools is BaseChatModel.bind_tools
        )
        if not implemented and not self._told_no_tools:
            self._told_no_tools = True
            logger.warning(
                "%s cannot call tools: optical memory runs without its recall_memory tool "
                "(pages are still sent)",
                type(model).__name__,
            )
        return implemented


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
