"""Messages to turns: ``{"role", "content"}`` dicts and LangChain messages as stored turns.

Importing this module needs no extra; LangChain is imported only when a LangChain message
comes in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from optical_memory.extras import import_extra
from optical_memory.turns import check_turn

__all__ = ["content_text", "message_to_turn", "turns_from_messages"]

#: The role a LangChain message ``type`` is stored under.
ROLE_OF_LANGCHAIN_TYPE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def turns_from_messages(messages: Iterable[Any]) -> list[tuple[str, str, datetime | None]]:
    """``(role, content, timestamp)`` of each message, all checked before any is returned."""
    if isinstance(messages, (str, bytes, dict)):
        raise TypeError("add_messages takes a list of messages; use add(role, content) for one")
    return [message_to_turn(message, index) for index, message in enumerate(messages)]


def message_to_turn(message: object, index: int = 0) -> tuple[str, str, datetime | None]:
    """One message as ``(role, content, timestamp)``; ``index`` names it in errors.

    Content given as a list of blocks keeps its text blocks; other blocks are noted as
    ``[type]``; an AI message's tool calls are written out as ``[tool call] name({args})``.
    """
    if isinstance(message, dict):
        if "role" not in message or "content" not in message:
            raise ValueError(
                f"message {index} needs 'role' and 'content' keys, got {list(message)}"
            )
        role, content = message["role"], content_text(message["content"], index)
        stamp = message.get("timestamp")
        check_turn(role, content, stamp)
        return role, content, stamp
    langchain_type = getattr(message, "type", None)
    if isinstance(langchain_type, str) and hasattr(message, "content"):
        messages = import_extra("langchain_core.messages", "langchain")
        if isinstance(message, messages.BaseMessage):
            role = ROLE_OF_LANGCHAIN_TYPE.get(message.type, message.type)
            content = content_text(message.content, index)
            for call in getattr(message, "tool_calls", None) or []:
                arguments = json.dumps(call.get("args", {}), ensure_ascii=False, sort_keys=True)
                content += f"\n[tool call] {call.get('name')}({arguments})"
            content = content.lstrip("\n")
            check_turn(role, content, None)
            return role, content, None
    raise TypeError(
        f"message {index} is a {type(message).__name__}: pass dicts with 'role' and 'content' "
        "or LangChain messages"
    )


def content_text(content: object, index: int = 0) -> str:
    """A message's content as text: a str as it is; of a block list, text blocks joined by
    newlines and every other block as ``[type]``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'block')}]")
            else:
                raise TypeError(
                    f"message {index} has a content block of type {type(block).__name__}"
                )
        return "\n".join(parts)
    raise TypeError(
        f"message {index} content must be a str or a list of blocks, not {type(content).__name__}"
    )
