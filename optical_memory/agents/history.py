"""``OpticalChatMessageHistory``: LangChain's chat-history interface over the memory's store.

For ``RunnableWithMessageHistory`` and anything else that keeps a ``BaseChatMessageHistory``:
messages are stored as turns of one thread (the same turns the middleware and ``wrap`` store,
each message once: :mod:`optical_memory.agents.identity`) and read back as text messages.
This class only stores: a chain built on it alone sends the model plain text. To send old
turns as pages, put :func:`~optical_memory.agents.wrap` around the model as well; the two then
share the thread's turns and nothing is stored twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from optical_memory.agents.identity import TURN_MESSAGE_ID_PREFIX
from optical_memory.agents.request import MemoryRequestBuilder
from optical_memory.extras import import_extra

import_extra("langchain_core", "langchain")

from langchain_core.chat_history import BaseChatMessageHistory  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)

if TYPE_CHECKING:
    from optical_memory.memory import OpticalMemory
    from optical_memory.turns import Turn


class AppendOnlyMemoryError(NotImplementedError):
    """Optical memory never deletes turns; ``clear`` cannot be honoured."""


class OpticalChatMessageHistory(BaseChatMessageHistory):
    """The turns of ``memory``'s thread (or of ``thread_id``) as LangChain messages.

    ``user``, ``assistant`` and ``system`` turns come back as ``HumanMessage``, ``AIMessage``
    and ``SystemMessage``; other roles (``tool`` …) as ``ChatMessage`` with that role, since a
    stored turn keeps the text of a tool exchange but not its call ids. The history is
    append-only: ``clear`` raises :class:`AppendOnlyMemoryError` (start a new ``thread_id``).
    """

    def __init__(self, memory: OpticalMemory, thread_id: str | None = None) -> None:
        self._builder = MemoryRequestBuilder(memory, memory.options)
        self.thread_id = thread_id or memory.thread_id
        self.memory = self._builder.memory_for(self.thread_id)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every stored turn of the thread, oldest first."""
        return [_turn_message(turn) for turn in self.memory.store.iter_turns(self.thread_id)]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store the messages not stored yet (recognised by their id); system messages are
        instructions, not turns, and are not stored."""
        self._builder.remember(self.thread_id, list(messages))

    def clear(self) -> None:
        raise AppendOnlyMemoryError(
            "optical memory is append-only (forgetting hides pages, it never deletes text): "
            "start a new thread_id for a fresh conversation"
        )


def _turn_message(turn: Turn) -> BaseMessage:
    # The id names the turn, so handing these messages back (RunnableWithMessageHistory does)
    # stores nothing twice.
    message_id = f"{TURN_MESSAGE_ID_PREFIX}{turn.id}"
    kind = {"user": HumanMessage, "assistant": AIMessage, "system": SystemMessage}.get(turn.role)
    if kind is None:
        return ChatMessage(content=turn.content, role=turn.role, id=message_id)
    return kind(content=turn.content, id=message_id)
