"""Expected legibility of a page at a mode, and what is known of each reader, with sources.

DeepSeek-OCR. Source: DeepSeek-OCR: Contexts Optical Compression (Wei, Sun, Li;
arXiv:2510.18234), Table 2: the model decoding English Fox pages of 600-1,300 text tokens from
64 vision tokens (TINY) and 100 (SMALL). Each row is a bin of pages by text-token count; the
paper gives the bin's compression (text tokens per vision token), the model's precision and
(in its text) how many pages each bin holds. A measurement of the model reading its own vision
tokens, not a pixel probe.

:func:`fox_precision` fits each measured column with a monotone curve: more text on a page
never reads better, so where the table goes up between rows (TINY: 83.8% at 800-900 tokens,
then 85.9%) the rows are pooled, weighted by their pages (pool-adjacent-violators), and the
fit is linear between the rows' mean text tokens. Below the table it holds the first row (less
text reads at least as well); above it, it goes on down the last segment's slope (more text
reads worse still), never below 0. The paper has no Fox figure for BASE, LARGE or GUNDAM:
:func:`fox_precision` says so (None), and :func:`expected_precision`, what the planner uses,
plans them conservatively: no better than SMALL on the same page, so a budget never pays for
a sharper page on a gain nobody measured. The paper counts text with DeepSeek-OCR's tokenizer;
pages here count o200k_base tokens (:func:`optical_memory.tokens.count_text_tokens`), used as
they stand.

Exact values (:func:`exact_value_prior`) and calibrated tables (:func:`load_calibration`)
follow below.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from optical_memory.modes import Mode

#: Table 2 rows: (text tokens from, to, pages in the bin,
#: (precision, compression) at 64 vision tokens, (precision, compression) at 100).
FOX_TABLE: tuple[tuple[int, int, int, tuple[float, float], tuple[float, float]], ...] = (
    (600, 700, 7, (0.965, 10.5), (0.985, 6.7)),
    (700, 800, 28, (0.938, 11.8), (0.973, 7.5)),
    (800, 900, 28, (0.838, 13.2), (0.968, 8.5)),
    (900, 1000, 14, (0.859, 15.1), (0.968, 9.7)),
    (1000, 1100, 11, (0.793, 16.5), (0.915, 10.6)),
    (1100, 1200, 8, (0.764, 17.7), (0.898, 11.3)),
    (1200, 1300, 4, (0.591, 19.7), (0.871, 12.6)),
)

#: The table as (compression, precision) points per vision-token budget (64: TINY, 100: SMALL).
FOX_POINTS: dict[int, list[tuple[float, float]]] = {
    64: [(row[3][1], row[3][0]) for row in FOX_TABLE],
    100: [(row[4][1], row[4][0]) for row in FOX_TABLE],
}

#: The modes the Fox table measured, by their vision tokens.
FOX_VISION_TOKENS = {Mode.TINY: 64, Mode.SMALL: 100}

#: A page's text tokens when none are given: the middle of the table's range.
REFERENCE_TEXT_TOKENS = 950


def _pooled(values: list[float], weights: list[float]) -> list[float]:
    """The non-increasing sequence nearest ``values`` in weighted least squares
    (pool-adjacent-violators)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(values, weights, strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            value2, weight2, count2 = blocks.pop()
            value1, weight1, count1 = blocks.pop()
            total = weight1 + weight2
            blocks.append([(value1 * weight1 + value2 * weight2) / total, total, count1 + count2])
    return [mean for mean, _, count in blocks for _ in range(int(count))]


def _fit(vision: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.array([c * vision for c, _ in FOX_POINTS[vision]])
    pages = [float(row[2]) for row in FOX_TABLE]
    precision = np.array(_pooled([p for _, p in FOX_POINTS[vision]], pages))
    return tokens, precision


_FITS = {mode: _fit(vision) for mode, vision in FOX_VISION_TOKENS.items()}


def fox_precision(text_tokens: float, mode: Mode | str) -> float | None:
    """DeepSeek-OCR's precision (0-1) on a page of ``text_tokens`` at ``mode`` by the monotone
    fit of Fox (see the module docstring); None at the modes the paper never measured.

    >>> round(fox_precision(900, "tiny"), 3), round(fox_precision(900, "small"), 3)
    (0.845, 0.968)
    >>> fox_precision(900, "base") is None
    True
    """
    mode = Mode.parse(mode)
    if text_tokens < 0:
        raise ValueError(f"text_tokens must be >= 0, not {text_tokens}")
    fit = _FITS.get(mode)
    if fit is None:
        return None
    tokens, precision = fit
    if text_tokens <= tokens[-1]:
        return float(np.interp(text_tokens, tokens, precision))
    slope = (precision[-1] - precision[-2]) / (tokens[-1] - tokens[-2])
    return float(max(0.0, precision[-1] + slope * (text_tokens - tokens[-1])))


def expected_precision(text_tokens: float, mode: Mode | str) -> float:
    """What the planner expects DeepSeek-OCR to read of a page of ``text_tokens`` at ``mode``:
    :func:`fox_precision` where Fox measured the mode, else (BASE, LARGE, GUNDAM) no more than
    SMALL on the same page.

    >>> expected_precision(900, "base") == expected_precision(900, "small")
    True
    """
    mode = Mode.parse(mode)
    measured = fox_precision(text_tokens, mode if mode in _FITS else Mode.SMALL)
    assert measured is not None
    return measured


def page_legibility(text_tokens: int, mode: Mode | str, vision_tokens: int) -> float:
    """Expected share of a page's text a reader gets at ``mode``: 1 when its image would cost
    more than its ``text_tokens`` (the page then goes as text), else :func:`expected_precision`."""
    if vision_tokens > text_tokens:
        return 1.0
    return expected_precision(text_tokens, mode)


# --- exact values -------------------------------------------------------------------------------

#: Share of exact values (ids, codes, amounts read character for character) a size must be
#: known to keep before a page's exact values are left to its image alone.
EXACT_ACCURACY_NEEDED = 0.99

#: Claude reading ids rendered in glyph cells of a given height: (cell height in px, share of
#: 20 ids read exactly). Source: pxpipe's published measurements (Claude Opus 4.8; 5x8-px cells
#: 10%, 10x16 95%, 20x32 100%).
CLAUDE_CELL_ACCURACY: tuple[tuple[float, float], ...] = ((8.0, 0.10), (16.0, 0.95), (32.0, 1.0))


#: The default renderer's font size in pixels on its 1024-px reference (BASE) page; the
#: renderers' density search chooses it (``optical_memory.renderers.layout``).
REFERENCE_FONT_PX = 17.0


def glyph_height(mode: Mode | str, font_px: float = REFERENCE_FONT_PX) -> float:
    """Height in pixels of glyph cells of a ``font_px`` font (on the 1024-px reference page)
    once the page is sent at ``mode``: scaled with the page's side (TINY 512 px, SMALL 640,
    BASE 1024, LARGE and GUNDAM 1280)."""
    side = {Mode.TINY: 512, Mode.SMALL: 640, Mode.BASE: 1024}.get(Mode.parse(mode), 1280)
    return font_px * side / 1024


def exact_value_prior(target: str, mode: Mode | str) -> float | None:
    """What is known, before any calibration, of the share of exact values ``target`` reads
    from a page at ``mode``; None where nothing is published (then it is planned as unread).

    Anthropic targets: :data:`CLAUDE_CELL_ACCURACY` at the page's glyph height, linear in
    log-height between the measured cells, no better than the smallest cell below it and exact
    above the largest. Every other target: unknown.
    """
    if not target.startswith("anthropic"):
        return None
    height = glyph_height(mode)
    points = CLAUDE_CELL_ACCURACY
    if height <= points[0][0]:
        return points[0][1]
    logs = np.log2([h for h, _ in points])
    return float(np.interp(np.log2(height), logs, [a for _, a in points]))


def reads_exactly(
    target: str, mode: Mode | str, calibrated: dict[Mode, float] | None = None
) -> bool:
    """Whether ``target`` is known to read exact values off a page at ``mode``: its
    ``calibrated`` exact-value accuracy at the mode if measured, else its prior, at least
    :data:`EXACT_ACCURACY_NEEDED`. Unknown reads as no."""
    mode = Mode.parse(mode)
    if calibrated is not None and mode in calibrated:
        accuracy: float | None = calibrated[mode]
    else:
        accuracy = exact_value_prior(target, mode)
    return accuracy is not None and accuracy >= EXACT_ACCURACY_NEEDED


# --- calibrated tables ---------------------------------------------------------------------------

#: Store blob namespace of calibrated legibility (content_hash: the model's key, mode: the
#: mode, identity: :data:`CALIBRATION_IDENTITY`).
LEGIBILITY_NAMESPACE = "legibility"
#: Names the calibration set and the scoring; a new set is a new identity (old tables unused).
CALIBRATION_IDENTITY = "calibration-set-v1"


@dataclass(frozen=True)
class ModeLegibility:
    """What a reader made of the calibration pages at one mode: the share of their characters
    (``character_accuracy``) and of their exact values (``exact_accuracy``), over ``pages``."""

    character_accuracy: float
    exact_accuracy: float
    pages: int

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ModeLegibility:
        return cls(**json.loads(data))


class _BlobStore(Protocol):
    def get_blob(
        self, namespace: str, content_hash: str, mode: str, identity: str
    ) -> bytes | None: ...

    def put_blob(
        self, namespace: str, content_hash: str, mode: str, identity: str, data: bytes
    ) -> None: ...


def save_calibration(store: _BlobStore, model_key: str, table: dict[Mode, ModeLegibility]) -> None:
    """Keep ``table`` in ``store`` as ``model_key``'s calibrated legibility."""
    for mode, row in table.items():
        data = row.to_json()
        store.put_blob(LEGIBILITY_NAMESPACE, model_key, mode.value, CALIBRATION_IDENTITY, data)


def load_calibration(store: _BlobStore, model_key: str) -> dict[Mode, ModeLegibility]:
    """``model_key``'s calibrated legibility per mode ({} when it was never calibrated)."""
    table = {}
    for mode in Mode:
        data = store.get_blob(LEGIBILITY_NAMESPACE, model_key, mode.value, CALIBRATION_IDENTITY)
        if data is not None:
            table[mode] = ModeLegibility.from_json(data)
    return table
