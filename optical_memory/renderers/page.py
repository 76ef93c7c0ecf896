"""What every renderer returns, and the interface renderers share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from PIL import Image

from optical_memory.modes import Mode
from optical_memory.renderers.png import png_bytes
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
        """The page as PNG bytes (:func:`~optical_memory.renderers.png.png_bytes`): a palette
        image at its bit depth; identical images give identical bytes (no metadata)."""
        return png_bytes(self.image)

    def text(self, turns: Sequence[Turn]) -> str:
        """The page's characters, turn pieces joined by newlines."""
        return "\n".join(turns[s.turn].content[s.start : s.end] for s in self.spans)


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


#: Side of the reference page, in pixels: every renderer lays text out once on a page this size
#: (BASE's input) and draws that same layout scaled to each mode's canvas.
REFERENCE_SIZE = 1024
# GUNDAM's page is 1280 px a side, a multiple of the 640-px tile: it tiles exactly 2x2.
_PAGE_SIDES = {
    Mode.TINY: 512,
    Mode.SMALL: 640,
    Mode.BASE: 1024,
    Mode.LARGE: 1280,
    Mode.GUNDAM: 1280,
}


def page_size(mode: Mode) -> tuple[int, int]:
    """``(width, height)`` of a page image at ``mode``: the mode's input square; GUNDAM 1280²."""
    side = _PAGE_SIDES[Mode.parse(mode)]
    return side, side


#: Page sides a renderer accepts per mode, in px.
MIN_PAGE_SIDE, MAX_PAGE_SIDE = 64, 4096


def page_sides(sides: Mapping[Mode, int] | Mapping[str, int] | None) -> dict[Mode, int]:
    """``sides`` (page side in px per mode) checked: modes parsed, sides whole numbers within
    :data:`MIN_PAGE_SIDE` .. :data:`MAX_PAGE_SIDE`; ``{}`` for None."""
    if sides is None:
        return {}
    if not isinstance(sides, Mapping):
        raise TypeError(f"sides must map modes to page sides in px, not {type(sides).__name__}")
    checked = {}
    for mode, side in sides.items():
        if isinstance(side, bool) or not isinstance(side, int):
            raise ValueError(f"page side for {mode!r} must be a whole number of px, not {side!r}")
        if not MIN_PAGE_SIDE <= side <= MAX_PAGE_SIDE:
            raise ValueError(
                f"page side for {mode!r} must be {MIN_PAGE_SIDE} to {MAX_PAGE_SIDE} px, not {side}"
            )
        checked[Mode.parse(mode)] = side
    return checked


def sides_key(sides: Mapping[Mode, int]) -> str:
    """The part of a renderer's settings key that names its page sides ("" for the modes'
    own): pages drawn at other sides are other pixels."""
    own = {mode: side for mode, side in sides.items() if side != page_size(mode)[0]}
    if not own:
        return ""
    return "/sides=" + ",".join(f"{mode.value}:{own[mode]}" for mode in Mode if mode in own)
