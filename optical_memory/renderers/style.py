"""Colours every renderer shares: each role's label colour, the ink and the paper."""

from __future__ import annotations

import zlib

#: Text colour.
INK = (0, 0, 0)
# Dark, saturated label colours: distinct from the black text at every mode, legible at TINY.
_LABEL_COLOURS = {"user": (0, 82, 204), "assistant": (178, 34, 34)}
_PALETTE = ((0, 82, 204), (178, 34, 34), (0, 122, 61), (128, 40, 160), (180, 90, 0), (0, 112, 130))


def label_colour(role: str) -> tuple[int, int, int]:
    """The RGB colour of ``role``'s label: fixed for user/assistant, else from a stable hash."""
    key = role.strip().lower()
    if key in _LABEL_COLOURS:
        return _LABEL_COLOURS[key]
    return _PALETTE[zlib.crc32(key.encode("utf-8")) % len(_PALETTE)]
