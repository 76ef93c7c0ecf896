"""A conversation turn: the unit memory stores and renderers print."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator


class Turn(BaseModel):
    """One message of a conversation.

    ``role`` is free text (``user``, ``assistant``, ``tool``, a LoCoMo speaker's name …);
    ``id`` is assigned by the store and ``None`` before a turn is stored.
    """

    model_config = ConfigDict(frozen=True)

    role: str
    content: str
    timestamp: datetime | None = None
    id: int | None = None

    @field_validator("role")
    @classmethod
    def _role_not_blank(cls, role: str) -> str:
        if not role.strip():
            raise ValueError("a turn's role must not be empty")
        return role


def transcript(turns: Sequence[Turn]) -> str:
    """The turns as the plain text a model would read instead of pages: one ``role: content``
    per turn, joined by newlines. Text-token counts in manifests and reports are of this text."""
    return "\n".join(f"{turn.role}: {turn.content}" for turn in turns)
