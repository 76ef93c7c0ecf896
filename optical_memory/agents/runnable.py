"""``wrap(memory, runnable)``: optical memory around any chat model or Runnable of messages.

For users without ``create_agent``: the wrapped Runnable takes what a chat model takes (a
string, a list of messages, a prompt value), adds the messages to the memory of the thread
named by ``config["configurable"]["thread_id"]`` (the memory's own thread when none), sends
``[system messages] + [memory pages] + [recent window]`` to the inner Runnable, and stores its
answer. ``memory.wrap(model)`` is the same call.

.. code-block:: python

    chat = memory.wrap(ChatOpenAI(model="gpt-4o"))
    chat.invoke([HumanMessage("Where did we leave off?")], {"configurable": {"thread_id": "a"}})

Messages are recognised by their LangChain ``id``; a message without one gets a fresh id (as
LangChain's own middleware does), so re-sending the same message objects stores nothing twice,
while rebuilding them from dicts each call would store them again: send only the new messages,
or the same objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from optical_memory.agents.request import CallUsage, MemoryRequestBuilder
from optical_memory.extras import import_extra

import_extra("langchain_core", "langchain")

from langchain_core.language_models import LanguageModelInput  # noqa: E402
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage  # noqa: E402
from langchain_core.messages.utils import convert_to_messages  # noqa: E402
from langchain_core.prompt_values import PromptValue  # noqa: E402
from langchain_core.runnables import Runnable, RunnableConfig  # noqa: E402
from langchain_core.runnables.config import ensure_config  # noqa: E402

if TYPE_CHECKING:
    from optical_memory.memory import OpticalMemory


class OpticalMemoryRunnable(Runnable[LanguageModelInput, Any]):
    """``runnable`` with optical memory in front of it; see :func:`wrap`.

    ``usage`` lists a :class:`~optical_memory.agents.CallUsage` per call (``last_usage``: the
    latest).
    """

    def __init__(
        self,
        memory: OpticalMemory,
        runnable: Runnable[Any, Any],
        *,
        keep_recent_turns: int = 6,
        budget_tokens: int | None = None,
        target: str | None = None,
        cache_control: Mapping[str, str] | Literal["auto"] | None = "auto",
    ) -> None:
        self.memory = memory
        self.runnable = runnable
        self.builder = MemoryRequestBuilder(
            memory,
            keep_recent_turns=keep_recent_turns,
            budget_tokens=budget_tokens,
            target=target,
            cache_control=cache_control,
        )
        self.usage: list[CallUsage] = []

    @property
    def last_usage(self) -> CallUsage | None:
        return self.usage[-1] if self.usage else None

    @property
    def InputType(self) -> Any:
        return LanguageModelInput

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        config = ensure_config(config)
        thread_id = _thread_id(config)
        request = self._request(thread_id, input)
        output = self.runnable.invoke(request, config, **kwargs)
        self._remember_output(thread_id, output)
        return output

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        config = ensure_config(config)
        thread_id = _thread_id(config)
        request = await asyncio.to_thread(self._request, thread_id, input)
        output = await self.runnable.ainvoke(request, config, **kwargs)
        await asyncio.to_thread(self._remember_output, thread_id, output)
        return output

    def _request(self, thread_id: str | None, input: LanguageModelInput) -> list[BaseMessage]:
        messages = _as_messages(input)
        system = [m for m in messages if isinstance(m, SystemMessage)]
        conversation = [m for m in messages if not isinstance(m, SystemMessage)]
        request, usage = self.builder.build(
            thread_id, conversation, system_messages=system, tools=_bound_tools(self.runnable)
        )
        self.usage.append(usage)
        return [*system, *request]

    def _remember_output(self, thread_id: str | None, output: Any) -> None:
        if isinstance(output, BaseMessage):
            self.builder.remember(thread_id, [output])


def wrap(
    memory: OpticalMemory,
    runnable: Runnable[Any, Any],
    *,
    keep_recent_turns: int = 6,
    budget_tokens: int | None = None,
    target: str | None = None,
    cache_control: Mapping[str, str] | Literal["auto"] | None = "auto",
) -> OpticalMemoryRunnable:
    """``runnable`` (a chat model, ``model.bind_tools(...)``, any Runnable taking messages)
    with ``memory`` in front of it: old turns go to it as page images, recent ones as text.

    Arguments mean what they mean for
    :class:`~optical_memory.agents.OpticalMemoryMiddleware`.
    """
    return OpticalMemoryRunnable(
        memory,
        runnable,
        keep_recent_turns=keep_recent_turns,
        budget_tokens=budget_tokens,
        target=target,
        cache_control=cache_control,
    )


def _as_messages(input: LanguageModelInput) -> list[BaseMessage]:
    """What a chat model accepts, as messages: a string, a prompt value, message-likes."""
    if isinstance(input, str):
        return [HumanMessage(content=input)]
    if isinstance(input, PromptValue):
        return input.to_messages()
    return convert_to_messages(input)


def _thread_id(config: RunnableConfig) -> str | None:
    thread_id = config.get("configurable", {}).get("thread_id")
    return None if thread_id is None else str(thread_id)


def _bound_tools(runnable: Runnable[Any, Any]) -> list[Any]:
    """Tool schemas bound with ``model.bind_tools``: they are part of every request."""
    kwargs = getattr(runnable, "kwargs", None)
    tools = kwargs.get("tools") if isinstance(kwargs, dict) else None
    return list(tools) if tools else []
