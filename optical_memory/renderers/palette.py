"""Pages as palette images: a few grey levels of ink, a few blends of each label colour.

Antialiased text reads the same with few levels: ink coverage is rounded to
:data:`GREY_LEVELS` greys, a role label's to :data:`LABEL_LEVELS` blends of its colour over the
paper. A page with two roles then holds 8 + 2 x 4 = 16 colours, 4 bits a pixel in its PNG.
``optical-memory experiment`` reports the probe's accuracy per mode on such pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from PIL import Image

#: Greys from ink (index 0, black) to paper (the last index, white).
GREY_LEVELS = 8
#: Blends of a label colour over the paper, the last one the full colour.
LABEL_LEVELS = 4
Colour = tuple[int, int, int]

# Grey value of the sheet (0 ink .. 255 paper) -> palette index of the nearest grey level.
_GREY_INDEX = [round(value * (GREY_LEVELS - 1) / 255) for value in range(256)]
_GREY_PALETTE = [round(i * 255 / (GREY_LEVELS - 1)) for i in range(GREY_LEVELS) for _ in "rgb"]
# Coverage of a label glyph (0..255) -> its blend level (0: the paper shows through).
_LABEL_LEVEL = [round(coverage * LABEL_LEVELS / 255) for coverage in range(256)]
_LABEL_WHERE = [255 if level else 0 for level in _LABEL_LEVEL]


def compose(
    sheet: Image.Image, labels: Sequence[tuple[int, int, Image.Image, Colour]]
) -> Image.Image:
    """The page (``P``) from its ink ``sheet`` (``L``, 0 = ink, 255 = paper) and its labels,
    each ``(left, top, coverage mask (L), colour)``; label pixels cover the ink beneath."""
    indices = sheet.point(_GREY_INDEX)
    palette = list(_GREY_PALETTE)
    first_index: dict[Colour, int] = {}
    for left, top, mask, colour in labels:
        if colour not in first_index:
            first_index[colour] = len(palette) // 3
            palette += [
                channel for level in range(1, LABEL_LEVELS + 1) for channel in _blend(colour, level)
            ]
        indices.paste(
            mask.point(_label_indices(first_index[colour])), (left, top), mask.point(_LABEL_WHERE)
        )
    page = indices.convert("P")
    page.putpalette(palette)
    return page


@cache
def _label_indices(first: int) -> list[int]:
    """Coverage -> palette index, for the label colour whose level 1 is at index ``first``."""
    return [first + level - 1 if level else 0 for level in _LABEL_LEVEL]


def _blend(colour: Colour, level: int) -> Colour:
    share = level / LABEL_LEVELS
    r, g, b = (round(255 + (channel - 255) * share) for channel in colour)
    return r, g, b
