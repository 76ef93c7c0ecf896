"""``wrap(memory, runnable)``: optical memory around any chat model or Runnable of messages.

For users without ``create_agent``: the wrapped Runnable takes what a chat model takes (a
string, a list of messages, a prompt value), adds the messages to the memory of the thread
named by ``config["configurable"]["thread_id"]`` (the memory's own thread when none), sends
``[system messages] + [memory pages] + [recent window]`` to the inner Runnable, and stores its
answer.

.. code-block:: python

    chat = wrap(memory, ChatOpenAI(model="gpt-4o"))
    chat.invoke([HumanMessage("Where did we leave off?")], {"configurable": {"thread_id": "a"}})

Pass the whole history each call or only the new messages, as LangChain messages or
``{"role", "content"}`` dicts, kept or rebuilt each call: each message is stored once,
recognised by its LangChain ``id`` or else by lining the call's messages up with the thread's
stored turns (:mod:`optical_memory.agents.identity`); the caller's messages are never changed.
``stream``/``astream`` pass the inner model's chunks on as they come
and store the whole answer at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from optical_memory.agents.front import MemoryFront
from optical_memory.agents.request import MemoryRequestBuilder
from optical_memory.agents.usage import CallUsage
from optical_memory.extras import import_extra
from optical_memory.options import MemoryOptions, OptionValues

import_extra("langchain_core", "langchain")

from langchain_core.language_models import LanguageModelInput  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    BaseMessage,
    BaseMessageChunk,
    HumanMessage,
    SystemMessage,
    message_chunk_to_message,
)
from langchain_core.messages.utils import convert_to_messages  # noqa: E402
from langchain_core.prompt_values import PromptValue  # noqa: E402
from langchain_core.runnables import Runnable, RunnableConfig  # noqa: E402
from langchain_core.runnables.config import ensure_config  # noqa: E402

if TYPE_CHECKING:
    from typing import Unpack

    from optical_memory.memory import OpticalMemory


class OpticalMemoryRunnable(MemoryFront, Runnable[LanguageModelInput, Any]):
    """``runnable`` with optical memory in front of it; see :func:`wrap`.

    ``usage`` lists a :class:`~optical_memory.agents.CallUsage` per call (``last_usage``: the
    latest); ``memory(thread_id)`` is one thread's memory.
    """

    def __init__(
        self,
        memory: OpticalMemory,
        runnable: Runnable[Any, Any],
        options: MemoryOptions | None = None,
        **overrides: Unpack[OptionValues],
    ) -> None:
        self.runnable = runnable
        self.options = MemoryOptions.of(options or memory.options, overrides)
        self._start_front(MemoryRequestBuilder(memory, self.options))
        # The target follows the wrapped chat model (an unknown one is an error here, not at
        # the first call).
        self.target = self.builder.target_for(runnable)

    def memory(self, thread_id: str | None = None) -> OpticalMemory:
        """The memory of ``thread_id`` (``None``: the memory's own thread)."""
        return self.builder.memory_for(thread_id, self.runnable)

    @property
    def InputType(self) -> Any:
        return LanguageModelInput

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        config = ensure_config(config)
        thread_id = _thread_id(config)
        request, usage = self._request(thread_id, input)
        output = self.runnable.invoke(request, config, **kwargs)
        self._remember_output(thread_id, usage, output)
        return output

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        config = ensure_config(config)
        thread_id = _thread_id(config)
        request, usage = await asyncio.to_thread(self._request, thread_id, input)
        output = await self.runnable.ainvoke(request, config, **kwargs)
        await asyncio.to_thread(self._remember_output, thread_id, usage, output)
        return output

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        **kwargs: Any | None,
    ) -> Iterator[Any]:
        """The inner model's chunks as they come; the whole answer is stored at the end."""
        config = ensure_config(config)
        thread_id = _thread_id(config)
        request, usage = self._request(thread_id, input)
        whole: Any = None
        for chunk in self.runnable.stream(request, config, **kwargs):
            whole = chunk if whole is None else whole + chunk
            yield chunk
        self._remember_output(thread_id, usage, _whole_message(whole))

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        **kwargs: Any | None,
    ) -> AsyncIterator[Any]:
        config = ensure_config(config)
        thread_id = _thread_id(config)
        request, usage = await asyncio.to_thread(self._request, thread_id, input)
        whole: Any = None
        async for chunk in self.runnable.astream(request, config, **kwargs):
            whole = chunk if whole is None else whole + chunk
            yield chunk
        await asyncio.to_thread(self._remember_output, thread_id, usage, _whole_message(whole))

    def _request(
        self, thread_id: str | None, input: LanguageModelInput
    ) -> tuple[list[BaseMessage], CallUsage]:
        messages = _as_messages(input)
        system = [m for m in messages if isinstance(m, SystemMessage)]
        conversation = [m for m in messages if not isinstance(m, SystemMessage)]
        request, usage = self.builder.build(
            thread_id,
            conversation,
            system_messages=system,
            tools=_bound_tools(self.runnable),
            model=self.runnable,
        )
        self._record_usage(usage)
        return [*system, *request], usage

    def _remember_output(self, thread_id: str | None, usage: CallUsage, output: Any) -> None:
        if not isinstance(output, BaseMessage):
            return
        self.builder.remember(thread_id, [output])
        billed = self.builder.record_bill(usage, output, self.runnable)
        self._replace_usage(usage, billed)


def wrap(
    memory: OpticalMemory,
    runnable: Runnable[Any, Any],
    options: MemoryOptions | None = None,
    **overrides: Unpack[OptionValues],
) -> OpticalMemoryRunnable:
    """``runnable`` (a chat model, ``model.bind_tools(...)``, any Runnable taking messages)
    with ``memory`` in front of it: old turns go to it as page images, recent ones as text.

    Options (:class:`~optical_memory.agents.MemoryOptions`, or its fields as keywords) mean
    what they mean for :class:`~optical_memory.agents.OpticalMemoryMiddleware`; the target
    defaults to the wrapped chat model's family.
    """
    return OpticalMemoryRunnable(memory, runnable, options, **overrides)


def _whole_message(whole: Any) -> Any:
    """Summed chunks as the message a model would have returned."""
    if isinstance(whole, BaseMessageChunk):
        return message_chunk_to_message(whole)
    return whole


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
