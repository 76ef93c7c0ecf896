"""A scripted chat model that records every request it receives (tests only; not a test module).

``RecordingChatModel`` is LangChain's ``GenericFakeChatModel`` plus two things an agent needs
and a test wants: ``bind_tools`` (``create_agent`` binds the agent's tools) and ``requests``,
the exact messages of every call, in order, so a test can assert on what the model was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import (
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field


class RecordingChatModel(GenericFakeChatModel):
    """Answers from ``messages`` (an iterator of ``AIMessage`` or str, tool calls allowed) and
    keeps a copy of every request in ``requests``.

    ``RecordingChatModel(messages=iter(["hi", AIMessage("", tool_calls=[...])]))``
    """

    requests: list[list[BaseMessage]] = Field(default_factory=list)
    """The messages of every call, oldest call first (system message included)."""

    bound_tools: list[dict[str, Any]] = Field(default_factory=list)
    """The tools of the latest ``bind_tools``, as OpenAI tool schemas."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.requests.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[Any, AIMessage]:
        self.bound_tools = [convert_to_openai_tool(tool) for tool in tools]
        return self

    @property
    def _llm_type(self) -> str:
        return "optical-memory-recording-fake"
