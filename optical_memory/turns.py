"""A conversation turn: the unit memory stores and renderers print."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator


class Turn(BaseModel):
    """One message of a conversation.

    ``role`` is free text (``user``, ``assistant``, ``tool``, a LoCoMo speaker's name …);
    ``id`` is assigned by the store (unique in the file) and ``None`` before a turn is stored;
    ``number`` counts the turns of its thread from 1 (also assigned by the store): the number
    captions, search hits, page labels and the recall tool show.
    """

    model_config = ConfigDict(frozen=True)

    role: str
    content: str
    timestamp: datetime | None = None
    id: int | None = None
    number: int | None = None

    @field_validator("role")
    @classmethod
    def _role_not_blank(cls, role: str) -> str:
        if not role.strip():
            raise ValueError("a turn's role must not be empty")
        return role


def turn_text(role: str, content: str) -> str:
    """How a turn (or a piece of one) reads as text: ``role: content``. Every text-token count
    of a turn, a page or a transcript is of this text."""
    return f"{role}: {content}"


def numbered_text(turn: Turn) -> str:
    """How a stored turn (or a piece of one) reads on a page and in a page's exact text:
    ``#number role: content`` (just :func:`turn_text` while it has no number)."""
    text = turn_text(turn.role, turn.content)
    return text if turn.number is None else f"#{turn.number} {text}"


def transcript(turns: Sequence[Turn]) -> str:
    """The turns as the plain text a model would read instead of pages: one
    :func:`turn_text` per turn, joined by newlines."""
    return "\n".join(turn_text(turn.role, turn.content) for turn in turns)


def check_turn(role: object, content: object, timestamp: object) -> None:
    """Raise a ``TypeError``/``ValueError`` that says what to do if these cannot make a turn."""
    if not isinstance(role, str):
        raise TypeError(f"role must be a str such as 'user', not {type(role).__name__}")
    if not role.strip():
        raise ValueError("role must not be empty: use 'user', 'assistant', 'tool' or a name")
    if isinstance(content, (bytes, bytearray)):
        raise TypeError("content must be a str, not bytes: decode it first (e.g. .decode('utf-8'))")
    if not isinstance(content, str):
        raise TypeError(f"content must be a str, not {type(content).__name__}")
    for text, what in ((role, "role"), (content, "content")):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"{what} holds a lone surrogate at index {error.start}, which is not valid "
                "Unicode text: decode the source with errors='replace' first"
            ) from None
    if timestamp is not None and not isinstance(timestamp, datetime):
        raise TypeError(f"timestamp must be a datetime or None, not {type(timestamp).__name__}")
