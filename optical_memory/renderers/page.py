"""What every renderer returns, and the interface renderers share."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from PIL import Image

from optical_memory.modes import Mode
from optical_memory.turns import Turn


class Span(NamedTuple):
    """Characters ``content[start:end]`` of turn number ``turn`` (index into the rendered list)."""

    turn: int
    start: int
    end: int


@dataclass
class RenderedPage:
    """One page image and exactly which text is printed on it.

    Over all pages of one ``render`` call the spans, in order, cover every character of every
    turn's content exactly once.
    """

    image: Image.Image
    mode: Mode
    spans: list[Span] = field(default_factory=list)

    def png(self) -> bytes:
        """The page as PNG bytes; identical images give identical bytes (no metadata)."""
        return png_bytes(self.image)

    def text(self, turns: Sequence[Turn]) -> str:
        """The page's characters, turn pieces joined by newlines."""
        return "\n".join(turns[s.turn].content[s.start : s.end] for s in self.spans)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


@runtime_checkable
class Renderer(Protocol):
    """Turns text into page images at a mode.

    ``settings_key`` identifies everything that changes the pixels (font, size, margins,
    version), so that stores can cache rendered pages across processes.
    """

    @property
    def settings_key(self) -> str: ...

    def render(self, turns: Sequence[Turn], mode: Mode) -> list[RenderedPage]: ...

    def paginate(self, turns: Sequence[Turn]) -> list[list[Span]]:
        """The page breaks ``render`` would make, without drawing (same for every mode)."""
        ...
