"""Messages as stored turns, read as plain data: no LangChain needed to store a message."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image

from optical_memory import OpticalMemory
from optical_memory.messages import message_to_turn, turns_from_messages


@dataclass
class ShapedLikeAMessage:
    """What a LangChain message exposes, without being one."""

    type: str
    content: Any
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    role: str | None = None


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_a_message_shaped_object_is_stored_with_its_images_and_tool_calls() -> None:
    message = ShapedLikeAMessage(
        "ai",
        [
            {"type": "text", "text": "Here is the chart."},
            {"type": "image", "base64": _png(30, 20), "mime_type": "image/png"},
            {"type": "reasoning", "reasoning": "hidden"},
        ],
        tool_calls=[{"name": "plot", "args": {"b": 2, "a": 1}, "id": "c1"}],
    )
    with OpticalMemory(None) as memory:
        (turn,) = memory.add_messages([message])
        assert turn.role == "assistant"
        assert turn.content == (
            "Here is the chart.\n[image 1: 30x20 image/png, 1 KB]\n[reasoning]\n"
            '[tool call] plot({"a": 1, "b": 2})'
        )
        (image,) = memory.turn_images(turn.id or 0)
        assert (image.width, image.height, image.mime_type) == (30, 20, "image/png")


def test_roles_follow_the_message_type_and_a_chat_message_names_its_own() -> None:
    turns = turns_from_messages(
        [
            ShapedLikeAMessage("human", "hi"),
            ShapedLikeAMessage("tool", "4 °C"),
            ShapedLikeAMessage("system", "be brief"),
            ShapedLikeAMessage("chat", "once upon a time", role="narrator"),
            ShapedLikeAMessage("function", "42"),
        ]
    )
    assert [t.role for t in turns] == ["user", "tool", "system", "narrator", "function"]


def test_langchain_messages_store_as_before() -> None:
    messages = pytest.importorskip("langchain_core.messages")
    turns = turns_from_messages(
        [
            messages.ChatMessage("the tide turns", role="narrator"),
            messages.HumanMessage(
                [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
                ]
            ),
        ]
    )
    assert [(t.role, t.content) for t in turns] == [
        ("narrator", "the tide turns"),
        ("user", "see\n[image 1: https://example.org/a.png]"),
    ]
    assert turns[1].images[0].url == "https://example.org/a.png"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (42, "message 0 is a int: pass dicts with 'role' and 'content' or LangChain messages"),
        (ShapedLikeAMessage("ai", 3.5), "message 0 content must be a str or a list of blocks"),
        (ShapedLikeAMessage("ai", [object()]), "message 0 has a content block of type object"),
    ],
)
def test_a_message_of_another_shape_is_a_clear_error(message: object, error: str) -> None:
    with pytest.raises(TypeError) as raised:
        message_to_turn(message)
    assert str(raised.value).startswith(error)
