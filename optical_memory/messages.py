"""Messages to turns: ``{"role", "content"}`` dicts and LangChain messages as stored turns.

The one conversion from a message to what the memory stores. Text blocks are kept; each image
block (LangChain v1 ``image`` blocks, older ``source_type`` blocks, OpenAI ``image_url`` parts;
base64 data or a URL) becomes a placeholder line in the turn's text, ``[image 1: 2048x2048
image/png, 412 KB]`` or ``[image 1: https://...]``, and an :class:`ImageRef` that the memory keeps
with the turn (the bytes, or the URL only: a URL is never fetched). Other blocks are noted as
``[type]``; an AI message's tool calls are written out as ``[tool call] name({args})``.

A LangChain message is read as plain data (its ``type``, ``content``, ``tool_calls`` and, for a
``ChatMessage``, ``role``), so this module imports no LangChain and takes any object shaped
like one.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

from optical_memory.turns import check_turn

__all__ = [
    "ImageRef",
    "MessageTurn",
    "content_text",
    "image_ref",
    "message_to_turn",
    "turns_from_messages",
]

#: The role a LangChain message ``type`` is stored under.
ROLE_OF_LANGCHAIN_TYPE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
#: The ``type`` of a LangChain ``ChatMessage`` (and its chunk), whose ``role`` is its own.
CHAT_MESSAGE_TYPES = ("chat", "ChatMessageChunk")
IMAGE_BLOCK_TYPES = ("image", "image_url")
#: Characters of an image URL printed in its placeholder (the whole URL is kept with the turn).
MAX_SHOWN_URL = 200


@dataclass(frozen=True)
class ImageRef:
    """An image of a message: its bytes (``data``, with ``mime_type`` and pixel size when the
    bytes are a readable image), or only its ``url``, or neither when the block was malformed
    (``note`` says how: the image is a placeholder, the message is stored all the same)."""

    mime_type: str
    data: bytes | None = None
    url: str | None = None
    width: int | None = None
    height: int | None = None
    note: str | None = None

    @property
    def unreadable(self) -> bool:
        return self.data is None and self.url is None

    def placeholder(self, number: int) -> str:
        """The line that stands for the image in the turn's text (and on its page)."""
        if self.unreadable:
            return f"[image {number}: unreadable {self.mime_type}, {self.note}]"
        if self.data is None:
            url = str(self.url)
            shown = url if len(url) <= MAX_SHOWN_URL else f"{url[:MAX_SHOWN_URL]}..."
            return f"[image {number}: {shown}]"
        size = f"{self.width}x{self.height} " if self.width and self.height else ""
        return f"[image {number}: {size}{self.mime_type}, {max(1, len(self.data) // 1024)} KB]"

    def block(self) -> dict[str, Any]:
        """The image as a LangChain v1 image block (a text block for an unreadable one)."""
        if self.unreadable:
            return {"type": "text", "text": f"[unreadable image: {self.note}]"}
        if self.data is None:
            return {"type": "image", "url": self.url}
        encoded = base64.b64encode(self.data).decode("ascii")
        return {"type": "image", "base64": encoded, "mime_type": self.mime_type}

    def to_json(self) -> dict[str, Any]:
        return {
            "mime_type": self.mime_type,
            "url": self.url,
            "width": self.width,
            "height": self.height,
            "bytes": None if self.data is None else len(self.data),
            "note": self.note,
        }


class MessageTurn(NamedTuple):
    """What one message is stored as."""

    role: str
    content: str
    timestamp: datetime | None
    images: tuple[ImageRef, ...] = ()


def turns_from_messages(messages: Iterable[Any]) -> list[MessageTurn]:
    """:class:`MessageTurn` of each message, all checked before any is returned."""
    if isinstance(messages, (str, bytes, dict)):
        raise TypeError("add_messages takes a list of messages; use add(role, content) for one")
    return [message_to_turn(message, index) for index, message in enumerate(messages)]


def message_to_turn(message: object, index: int = 0) -> MessageTurn:
    """One message as a :class:`MessageTurn`; ``index`` names it in errors."""
    if isinstance(message, dict):
        if "role" not in message or "content" not in message:
            raise ValueError(
                f"message {index} needs 'role' and 'content' keys, got {list(message)}"
            )
        role = message["role"]
        content, images = _content(message["content"], index)
        stamp = message.get("timestamp")
        check_turn(role, content, stamp)
        return MessageTurn(role, content, stamp, images)
    message_type = getattr(message, "type", None)
    if isinstance(message_type, str) and hasattr(message, "content"):
        # A LangChain message, read by its attributes (a ChatMessage names its own role).
        role = ROLE_OF_LANGCHAIN_TYPE.get(message_type, message_type)
        custom_role = getattr(message, "role", None)
        if message_type in CHAT_MESSAGE_TYPES and isinstance(custom_role, str):
            role = custom_role
        content, images = _content(message.content, index)
        content += tool_call_lines(message)
        content = content.lstrip("\n")
        check_turn(role, content, None)
        return MessageTurn(role, content, None, images)
    raise TypeError(
        f"message {index} is a {type(message).__name__}: pass dicts with 'role' and 'content' "
        "or LangChain messages"
    )


def tool_call_lines(message: object) -> str:
    """An AI message's tool calls as stored: ``\\n[tool call] name({args})`` each."""
    lines = ""
    for call in getattr(message, "tool_calls", None) or []:
        arguments = json.dumps(call.get("args", {}), ensure_ascii=False, sort_keys=True)
        lines += f"\n[tool call] {call.get('name')}({arguments})"
    return lines


def content_text(content: object, index: int = 0) -> str:
    """A message's content as text: a str as it is; of a block list, text blocks joined by
    newlines, images as placeholders and every other block as ``[type]``."""
    return _content(content, index)[0]


def _content(content: object, index: int) -> tuple[str, tuple[ImageRef, ...]]:
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        raise TypeError(
            f"message {index} content must be a str or a list of blocks, not "
            f"{type(content).__name__}"
        )
    parts: list[str] = []
    images: list[ImageRef] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") in IMAGE_BLOCK_TYPES:
            image = image_ref(block, index)
            images.append(image)
            parts.append(image.placeholder(len(images)))
        elif isinstance(block, dict):
            parts.append(f"[{block.get('type', 'block')}]")
        else:
            raise TypeError(f"message {index} has a content block of type {type(block).__name__}")
    return "\n".join(parts), tuple(images)


def image_ref(block: dict[str, Any], index: int = 0) -> ImageRef:
    """The image of an image block: decoded base64 (size read from its header), the bytes of
    a ``data:`` URL that is not base64, or its URL. A malformed block (no data or URL, invalid
    base64) is an unreadable :class:`ImageRef` whose ``note`` says why, never an error: the
    message is stored and the conversation goes on."""
    data: str | None = None
    url: str | None = None
    mime = str(block.get("mime_type") or "")
    if block.get("type") == "image_url":
        inner = block.get("image_url")
        url = str(inner.get("url") if isinstance(inner, dict) else inner)
    else:
        found_data = block.get("base64") or (
            block.get("data") if block.get("source_type") == "base64" else None
        )
        data = None if found_data is None else str(found_data)
        if data is None:
            found = block.get("url") or (
                block.get("data") if block.get("source_type") == "url" else None
            )
            url = None if found is None else str(found)
    if url is not None and url.startswith("data:"):
        header, comma, payload = url[5:].partition(",")
        kind = header.split(";", 1)[0]
        if not comma:
            return ImageRef(mime_type=mime or kind or "image", note="a data: URL without data")
        if header.endswith(";base64"):
            data, mime, url = payload, mime or kind, None
        else:  # percent-encoded bytes (an SVG, say): kept as bytes, never printed
            raw = unquote_to_bytes(payload)
            return _decoded_image(raw, mime or kind or "application/octet-stream")
    if data is None and url is None:
        return ImageRef(
            mime_type=mime or "image",
            note=f"an image block with neither base64 data nor a URL (keys {sorted(block)})",
        )
    if data is None:
        return ImageRef(mime_type=mime or "image", url=url)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        return ImageRef(mime_type=mime or "image", note=f"invalid base64 ({error})")
    return _decoded_image(raw, mime)


def _decoded_image(raw: bytes, mime: str) -> ImageRef:
    width = height = None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            mime = mime or Image.MIME.get(image.format or "", "")
    except Exception:  # not an image Pillow reads: kept as bytes, counted by the target's prior
        pass
    return ImageRef(
        mime_type=mime or "application/octet-stream", data=raw, width=width, height=height
    )
