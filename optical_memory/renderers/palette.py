"""Pages as palette images: a ramp of greys for the ink, one entry per label colour.

Antialiased text reads the same with a few grey levels: ink coverage is rounded to the nearest
of :data:`GREY_LEVELS` greys. A role label's pixel, its colour blended over the paper by the
glyph's coverage, takes the nearest palette entry: the label colour itself in the glyph's core,
a grey of about the same brightness on its antialiased edge. A page with two roles thus holds
14 greys + 2 colours = 16 entries, 4 bits a pixel in its PNG. ``optical-memory experiment``
reports the probe's accuracy per mode on such pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from PIL import Image

#: Greys from ink (index 0, black) to paper (the last index, white).
GREY_LEVELS = 14
Colour = tuple[int, int, int]

# Grey value of the sheet (0 ink .. 255 paper) -> palette index of the nearest grey level.
_GREY_INDEX = [round(value * (GREY_LEVELS - 1) / 255) for value in range(256)]
_GREYS = [round(i * 255 / (GREY_LEVELS - 1)) for i in range(GREY_LEVELS)]
_PAPER = GREY_LEVELS - 1


def compose(
    sheet: Image.Image, labels: Sequence[tuple[int, int, Image.Image, Colour]]
) -> Image.Image:
    """The page (``P``) from its ink ``sheet`` (``L``, 0 = ink, 255 = paper) and its labels,
    each ``(left, top, coverage mask (L), colour)``; label pixels cover the ink beneath."""
    indices = sheet.point(_GREY_INDEX)
    paste = indices.im.paste  # the core image's: Image.paste's checks cost more than the paste
    colours: list[Colour] = []
    for left, top, mask, colour in labels:
        if colour not in colours:
            colours.append(colour)
        index, where = _label_lookup(colour, GREY_LEVELS + colours.index(colour))
        box = (left, top, left + mask.width, top + mask.height)
        paste(mask.im.point(index, None), box, mask.im.point(where, None))
    page = indices.convert("P")
    page.putpalette(
        [channel for grey in _GREYS for channel in (grey,) * 3]
        + [channel for colour in colours for channel in colour]
    )
    return page


@cache
def _label_lookup(colour: Colour, own: int) -> tuple[list[int], list[int]]:
    """Coverage (0-255) -> palette index of ``colour`` at that coverage over the paper (its own
    entry at ``own``, or the nearest grey), and -> 255 where that is not the paper."""
    index = []
    for coverage in range(256):
        share = coverage / 255
        blend = [255 + (channel - 255) * share for channel in colour]
        distance_to_colour = sum((b - c) ** 2 for b, c in zip(blend, colour, strict=True))
        grey = min(range(GREY_LEVELS), key=lambda i: sum((b - _GREYS[i]) ** 2 for b in blend))
        distance_to_grey = sum((b - _GREYS[grey]) ** 2 for b in blend)
        index.append(own if distance_to_colour < distance_to_grey else grey)
    return index, [0 if i == _PAPER else 255 for i in index]
