"""Pages as palette images: a few greys for the ink, one entry per label colour.

Antialiased text reads the same with a few grey levels (``benchmarks/palette.py`` measures the
probe's accuracy per mode and the PNG bytes for each ramp it is given). A :class:`Ramp` says how
many greys a page has and how glyph coverage maps onto them:

- A glyph's coverage is first stretched: a pixel covered less than ``fringe`` gets no ink (the
  faint halo antialiasing leaves around every stroke), one covered more than ``core`` gets full
  ink. This happens once per glyph, when the renderer caches it.
- The renderer then draws straight into palette indices: a page starts at :attr:`Ramp.paper`
  (white, the last grey) and ink is pasted through each glyph's coverage towards index 0 (black).
  Because the greys are evenly spaced, blending indices is blending greys, so the page comes
  out quantized to the ramp with no pass over its pixels.
- A role label's pixel, its colour blended over the paper by the glyph's coverage, takes the
  nearest palette entry: the label colour itself in the glyph's core, a grey of about the same
  brightness on its antialiased edge.

With the default ramp a page with two roles holds 6 greys + 2 colours = 8 entries, 4 bits a
pixel in its PNG (up to 10 roles fit in those 4 bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from PIL import Image

Colour = tuple[int, int, int]
#: Palette index of the ink (black).
INK = 0
#: Most greys a ramp may have: label colours and emoji colours share the rest of the 256.
MAX_LEVELS = 64


@dataclass(frozen=True)
class Ramp:
    """The greys of a page: ``levels`` evenly spaced from black to white, and the coverage
    stretch (``fringe`` → no ink, ``core`` → full ink, linear between)."""

    levels: int = 6
    fringe: float = 0.14
    core: float = 0.76

    def __post_init__(self) -> None:
        if not 2 <= self.levels <= MAX_LEVELS:
            raise ValueError(f"a ramp has 2 to {MAX_LEVELS} greys, got {self.levels}")
        if not 0 <= self.fringe < self.core <= 1:
            raise ValueError(
                f"need 0 <= fringe < core <= 1, got fringe={self.fringe}, core={self.core}"
            )

    @property
    def key(self) -> str:
        """The ramp in a renderer's settings key."""
        return f"{self.levels}:{self.fringe:g}:{self.core:g}"

    @property
    def paper(self) -> int:
        """Palette index of the paper (white)."""
        return self.levels - 1

    @cached_property
    def greys(self) -> list[int]:
        """Grey value of each of the first ``levels`` palette entries, black to white."""
        return [round(i * 255 / (self.levels - 1)) for i in range(self.levels)]

    @cached_property
    def contrast(self) -> list[int]:
        """Coverage (0-255) -> the ink to paste (0-255): the stretch from fringe to core."""
        span = self.core - self.fringe
        return [round(255 * min(1.0, max(0.0, (c / 255 - self.fringe) / span))) for c in range(256)]

    def sheet(self, size: tuple[int, int]) -> Image.Image:
        """A blank page (``P``, all paper) to paste ink onto: ``paste(INK, box, coverage)``
        blends each pixel's index towards black, which is its grey quantized to the ramp."""
        return Image.new("P", size, self.paper)

    def compose(
        self, page: Image.Image, labels: Sequence[tuple[int, int, Any, Colour]]
    ) -> Image.Image:
        """``page`` (a :meth:`sheet` holding the ink) with its labels, each ``(left, top,
        coverage mask, colour)``, and its palette; label pixels cover the ink beneath. Masks
        are Pillow's core images (``Image.im``, mode ``L``), as the renderer keeps its glyphs."""
        paste = page.im.paste  # the core image's: Image.paste's checks cost more than the paste
        colours: list[Colour] = []
        for left, top, mask, colour in labels:
            if colour not in colours:
                colours.append(colour)
            index, where = _label_lookup(self, colour, self.levels + colours.index(colour))
            width, height = mask.size
            box = (left, top, left + width, top + height)
            paste(mask.point(index, None), box, mask.point(where, None))
        greys = [channel for grey in self.greys for channel in (grey,) * 3]
        page.putpalette(greys + [channel for colour in colours for channel in colour])
        return page

    def add_colour_glyphs(
        self, page: Image.Image, glyphs: Sequence[tuple[int, int, Any, Image.Image]]
    ) -> Image.Image:
        """``page`` (from :meth:`compose`: its palette set) with colour glyphs (emoji) pasted in,
        each ``(left, top, coverage mask, RGB pixels)``. The glyphs, over what lies beneath
        them, are reduced together to the palette entries left (Pillow's fast octree,
        undithered): only their pixels are quantized, not the page's. The page's PNG then
        takes 8 bits a pixel."""
        used = len(page.getpalette("RGB") or ()) // 3
        boxes = [
            (left, top, left + mask.size[0], top + mask.size[1]) for left, top, mask, _ in glyphs
        ]
        strip = Image.new("RGB", (sum(b[2] - b[0] for b in boxes), max(b[3] - b[1] for b in boxes)))
        x = 0
        for box, (_, _, mask, colour) in zip(boxes, glyphs, strict=True):
            width, height = mask.size
            under = page.crop(box).convert("RGB")
            under.im.paste(colour.im, (0, 0, width, height), mask)
            strip.paste(under, (x, 0))
            x += width
        reduced = strip.quantize(
            256 - used, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        shift = [min(255, index + used) for index in range(256)]
        x = 0
        for box, (_, _, mask, _) in zip(boxes, glyphs, strict=True):
            width, height = mask.size
            patch = reduced.im.crop((x, 0, x + width, height)).point(shift, None)
            page.im.paste(patch, box, mask.point(_INKED, None))
            x += width
        page.putpalette((page.getpalette("RGB") or []) + (reduced.getpalette("RGB") or []))
        return page


#: Coverage -> 255 wherever a glyph has any.
_INKED = [0] + [255] * 255


@cache
def _label_lookup(ramp: Ramp, colour: Colour, own: int) -> tuple[list[int], list[int]]:
    """Coverage (0-255) -> palette index of ``colour`` at that coverage over the paper (its own
    entry at ``own``, or the nearest grey), and -> 255 where that is not the paper."""
    greys = ramp.greys
    index = []
    for coverage in range(256):  # of a glyph mask: stretched already
        share = coverage / 255
        blend = [255 + (channel - 255) * share for channel in colour]
        distance_to_colour = sum((b - c) ** 2 for b, c in zip(blend, colour, strict=True))
        grey = min(range(ramp.levels), key=lambda i: sum((b - greys[i]) ** 2 for b in blend))
        distance_to_grey = sum((b - greys[grey]) ** 2 for b in blend)
        index.append(own if distance_to_colour < distance_to_grey else grey)
    return index, [0 if i == ramp.paper else 255 for i in index]
