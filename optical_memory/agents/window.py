"""The caller's messages as a request sends them: tails of turns whose head is on a page,
tool calls re-sent alone (names and ids; their arguments are on the page) before their
results, images, and their text-token counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optical_memory.extras import import_extra
from optical_memory.messages import ImageRef, content_text, image_ref, tool_call_lines
from optical_memory.tokens import count_text_tokens

import_extra("langchain_core", "langchain")

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage  # noqa: E402

#: Marks the memory message (``additional_kwargs["lc_source"]``), as LangChain marks summaries.
MEMORY_MESSAGE_SOURCE = "optical_memory"
#: Marks a tool call re-sent without its text because the text is on a page.
TOOL_CALL_SOURCE = "optical_memory_tool_call"


@dataclass(frozen=True)
class MessageInfo:
    """What the memory learnt of one caller message: its turn, stored length and images."""

    turn_id: int
    length: int
    images: tuple[ImageRef, ...]


def is_memory_message(message: BaseMessage) -> bool:
    return message.additional_kwargs.get("lc_source") == MEMORY_MESSAGE_SOURCE


def is_call_envelope(message: BaseMessage) -> bool:
    return message.additional_kwargs.get("lc_source") == TOOL_CALL_SOURCE


def images_in(text: str, images: Sequence[ImageRef]) -> list[ImageRef]:
    """The images whose placeholder (``[image N: ...``) lies in ``text``."""
    return [image for n, image in enumerate(images, 1) if f"[image {n}:" in text]


def images_sent(message: BaseMessage, known: MessageInfo) -> list[ImageRef]:
    """The images a verbatim (or tail) message carries."""
    if isinstance(message.content, str):
        return []
    found = []
    for block in message.content:
        if isinstance(block, dict) and block.get("type") in ("image", "image_url"):
            found.append(image_ref(block))
    return found


def tail_of(message: BaseMessage, offset: int, known: MessageInfo) -> list[BaseMessage]:
    """``message`` from character ``offset`` of its stored text on (its head is on a page):
    the tail as text, the images whose placeholders it holds, its tool calls."""
    text = content_text(message.content)
    calls = tool_call_lines(message)
    stored = (text + calls).lstrip("\n") if calls else text
    lead = len(text + calls) - len(stored)  # a leading newline dropped before the calls
    if calls and offset + lead >= len(text):
        # The head, text and part of the calls, is on the page: the calls go alone, with the
        # rest of their written-out text.
        rest = stored[offset:]
        return [call_envelope(message, message.tool_calls, rest)]  # type: ignore[attr-defined]
    tail = stored[offset:] if not calls else text[offset:]
    blocks: list[Any] = [{"type": "text", "text": tail}]
    blocks.extend(image.block() for image in images_in(tail, known.images))
    content: Any = tail if len(blocks) == 1 else blocks
    return [message.model_copy(update={"content": content})]


def call_envelope(message: BaseMessage, calls: list[Any], text: str = "") -> AIMessage:
    """The tool calls of ``message`` re-sent so their results are valid, for calls written out
    on a page (``[tool call] name({args})``): names and ids only, the arguments left empty
    (they are on the page; sending them again would send them twice). ``text``: the part of
    the written-out calls that is not on the page."""
    return AIMessage(
        content=text,
        tool_calls=[{**call, "args": {}} for call in calls],
        id=message.id,
        additional_kwargs={"lc_source": TOOL_CALL_SOURCE},
    )


def with_tool_calls(selected: list[BaseMessage], live: list[BaseMessage]) -> list[BaseMessage]:
    """``selected`` with, before each tool result whose call it lacks, that call alone (its
    text is on a page): a ToolMessage is only valid after the AIMessage that called it."""
    present = {
        call.get("id") for m in selected if isinstance(m, AIMessage) for call in m.tool_calls
    }
    calls_of = {
        call.get("id"): m for m in live if isinstance(m, AIMessage) for call in m.tool_calls
    }
    result: list[BaseMessage] = []
    for index, message in enumerate(selected):
        if isinstance(message, ToolMessage) and message.tool_call_id not in present:
            caller = calls_of.get(message.tool_call_id)
            if caller is not None:
                # Every result of that call in this request, so no call lacks its result.
                answered = {m.tool_call_id for m in selected[index:] if isinstance(m, ToolMessage)}
                calls = [c for c in caller.tool_calls if c.get("id") in answered]
                result.append(call_envelope(caller, calls))
                present.update(c.get("id") for c in calls)
        result.append(message)
    return result


def message_tokens(message: BaseMessage) -> int:
    """Text tokens of one message as sent: its text blocks and its tool calls (name, args)."""
    return sum(count_text_tokens(text) for text in _sent_texts(message))


def message_chars(message: BaseMessage) -> int:
    """Characters of the same (a provider may count text its own way: calibration fits both)."""
    return sum(len(text) for text in _sent_texts(message))


def _sent_texts(message: BaseMessage) -> list[str]:
    texts = [str(message.text)]
    for call in getattr(message, "tool_calls", None) or []:
        arguments = json.dumps(call.get("args", {}), ensure_ascii=False, sort_keys=True)
        texts.append(f"{call.get('name', '')}({arguments})")
    return texts


def instruction_tokens(system_messages: Sequence[SystemMessage], tools: Sequence[Any]) -> int:
    """Tokens of what every request carries besides the conversation."""
    return sum(count_text_tokens(text) for text in _instruction_texts(system_messages, tools))


def instruction_chars(system_messages: Sequence[SystemMessage], tools: Sequence[Any]) -> int:
    """Characters of the same (a provider may count text its own way: calibration fits both)."""
    return sum(len(text) for text in _instruction_texts(system_messages, tools))


def _instruction_texts(system_messages: Sequence[SystemMessage], tools: Sequence[Any]) -> list[str]:
    texts: list[str] = [str(message.text) for message in system_messages]
    if tools:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        schemas = [t if isinstance(t, dict) else convert_to_openai_tool(t) for t in tools]
        texts.append(json.dumps(schemas, sort_keys=True))
    return texts


def model_key(model: Any) -> str:
    """What names a chat model in the learnt cost table: its model name, else its class."""
    if model is None:
        return ""
    seen = 0
    while hasattr(model, "bound") and seen < 8:
        model, seen = model.bound, seen + 1
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    return str(name) if isinstance(name, str) and name else type(model).__name__
