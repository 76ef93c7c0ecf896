"""The reader's own accuracy: DeepSeek-OCR's precision on the Fox benchmark, by text per page.

Source: H. Wei, Y. Sun, Y. Li, *DeepSeek-OCR: Contexts Optical Compression*, arXiv:2510.18234
(2025), Table 2: every English Fox document of 600-1,300 text tokens (ground truth tokenized with
the model's own tokenizer), decoded from 64 vision tokens (TINY, 512x512) and from 100 (SMALL,
640x640); precision of the decoded text against the ground truth. The table covers no other
mode. Pages here count text tokens with ``o200k_base``, taken as the paper's count: both are
BPE vocabularies of English prose.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

from optical_memory.modes import Mode


class FoxBin(NamedTuple):
    """One row of Table 2: pages of ``low``-``high`` text tokens, decoded from 64 and from 100
    vision tokens: precision (0-1) and the paper's compression (text per vision token)."""

    low: int
    high: int
    pages: int
    precision_64: float
    compression_64: float
    precision_100: float
    compression_100: float


FOX_TABLE: tuple[FoxBin, ...] = (
    FoxBin(600, 700, 7, 0.965, 10.5, 0.985, 6.7),
    FoxBin(700, 800, 28, 0.938, 11.8, 0.973, 7.5),
    FoxBin(800, 900, 28, 0.838, 13.2, 0.968, 8.5),
    FoxBin(900, 1000, 14, 0.859, 15.1, 0.968, 9.7),
    FoxBin(1000, 1100, 11, 0.793, 16.5, 0.915, 10.6),
    FoxBin(1100, 1200, 8, 0.764, 17.7, 0.898, 11.3),
    FoxBin(1200, 1300, 4, 0.591, 19.7, 0.871, 12.6),
)
#: The modes Table 2 measured: their vision tokens (the table's columns).
FOX_MODES: dict[Mode, int] = {Mode.TINY: 64, Mode.SMALL: 100}


def fox_points(mode: Mode | str) -> list[tuple[float, float]]:
    """Table 2's (compression, precision) points for ``mode`` (TINY or SMALL), as plotted."""
    tokens = FOX_MODES[Mode.parse(mode)]
    return [
        (row.compression_64, row.precision_64)
        if tokens == 64
        else (row.compression_100, row.precision_100)
        for row in FOX_TABLE
    ]


_CENTRES = [(row.low + row.high) / 2 for row in FOX_TABLE]


def expected_precision(text_tokens: float, mode: Mode | str) -> float | None:
    """DeepSeek-OCR's expected precision (0-1) reading a page of ``text_tokens`` at ``mode``.

    Linear between the centres of Table 2's bins (650, 750, ... 1,250 tokens), held flat beyond
    them: below 650 tokens the 600-700 bin's precision (the table has no lighter pages), above
    1,250 the 1,200-1,300 bin's (an optimistic bound for denser pages). ``None`` for a mode the
    table did not measure (BASE, LARGE, GUNDAM).
    """
    mode = Mode.parse(mode)
    if mode not in FOX_MODES:
        return None
    if isinstance(text_tokens, bool) or not isinstance(text_tokens, int | float):
        raise TypeError(f"text_tokens must be a number, not {type(text_tokens).__name__}")
    if not text_tokens >= 0:
        raise ValueError(f"text_tokens must be a count >= 0, not {text_tokens}")
    column = [precision for _, precision in fox_points(mode)]
    right = bisect.bisect_right(_CENTRES, text_tokens)
    if right == 0:
        return column[0]
    if right == len(_CENTRES):
        return column[-1]
    left = right - 1
    share = (text_tokens - _CENTRES[left]) / (_CENTRES[right] - _CENTRES[left])
    return column[left] + share * (column[right] - column[left])
