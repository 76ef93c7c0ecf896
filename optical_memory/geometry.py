"""Page geometry per target: the page side each fading level is drawn at for a cloud reader.

DeepSeek-OCR reads its five modes at fixed input sizes (TINY 512 px ... GUNDAM 1280), and the
pages are drawn at those sizes for DeepSeek-OCR. A cloud reader instead sees a page at its own
pixels after its provider's documented resize, and pays by that provider's billing rule
(:func:`optical_memory.targets.vision_tokens`): area, 512-px tiles, 32- or 28-px patches, or a
flat price per image. So each cloud target keeps the five mode names as its fading levels (the
schedule, planner, store, viewer and request builder work unchanged) but draws each level at a
side of its own, the same layout scaled (a page keeps exactly its text at every level), so the
glyph cell a level gives the reader follows from the side.

How a level's side is chosen (:func:`level_sides`): among square sides that cost the target no
more tokens than DeepSeek's size for that level did (so no context gets dearer), the faded
levels (SMALL, TINY) take the side with the most expected legible characters per billed token,
the sharp levels (BASE, LARGE, GUNDAM) the most legible one; ties go to the larger glyph cell at
the provider's pixels, then to a page the provider does not shrink. A sharper level is never
drawn smaller than a fainter one. Expected legibility per glyph cell
(:func:`cell_legibility`) is the reader's calibrated table when there is one, else the prior
(:data:`~optical_memory.legibility.CLAUDE_CELL_ACCURACY` for Claude, the same measurements at
cells twice as tall for readers nobody published figures for); below the smallest cell measured,
nothing is known and nothing is expected. Where the prior expects nothing at any side (GPT at
every size a 768-px tile page allows), the choice is the largest glyph cell for the tokens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from optical_memory.legibility import CLAUDE_CELL_ACCURACY, REFERENCE_FONT_PX, ModeLegibility
from optical_memory.modes import FADING_ORDER, Mode
from optical_memory.targets import target_spec, vision_tokens

#: DeepSeek-OCR's page side per mode: what every target drew before it had a geometry.
DEEPSEEK_SIDES: dict[Mode, int] = {
    Mode.TINY: 512,
    Mode.SMALL: 640,
    Mode.BASE: 1024,
    Mode.LARGE: 1280,
    Mode.GUNDAM: 1280,
}
#: Targets that read pages at DeepSeek-OCR's own sizes.
DEEPSEEK_TARGETS = ("deepseek-ocr", "deepseek-ocr-vllm")
#: Sides tried, in px: multiples of this step, from the smallest to the largest page drawn.
SIDE_STEP = 16
MIN_SIDE = 256
#: No page is drawn larger than the largest page drawn before (GUNDAM's): request byte limits
#: and render times were sized for it.
MAX_SIDE = 1280
#: Levels where legible characters per token decide; the sharper ones keep the most legible
#: page their tokens buy (the user asked for them to be sharp).
FADED_LEVELS = (Mode.SMALL, Mode.TINY)

#: Readers with no published cell-size measurement: Claude's figures at cells twice as tall
#: (GPT read none of 15 hex ids where Claude read most; planning on Claude's curve would
#: overrate them).
CONSERVATIVE_CELL_ACCURACY: tuple[tuple[float, float], ...] = tuple(
    (height * 2, share) for height, share in CLAUDE_CELL_ACCURACY
)


@dataclass(frozen=True)
class LevelGeometry:
    """One fading level of a target: the page ``side`` drawn (px), the ``font_px`` its text
    is drawn at, the ``sent_side`` the reader sees after its provider's resize, the glyph
    ``cell_height`` there (px), the billed ``tokens`` and the expected ``legibility``."""

    mode: Mode
    side: int
    font_px: float
    sent_side: float
    cell_height: float
    tokens: int
    legibility: float

    @property
    def legible_per_token(self) -> float:
        """Expected legible share of the page's characters per billed token."""
        return self.legibility / self.tokens if self.tokens else 0.0


def has_own_geometry(target: str) -> bool:
    """Whether ``target`` gets a page geometry of its own (every target but DeepSeek-OCR)."""
    target_spec(target)  # a clear error for an unknown target
    return target not in DEEPSEEK_TARGETS


def provider_scale(target: str, side: float) -> float:
    """The factor by which ``target``'s provider scales a square page of ``side`` px before its
    model sees it, as the provider documents it (below 1: shrunk; Qwen also rounds up to its
    patch grid); 1 where nothing is documented."""
    limits: list[float] = [1.0]
    if target.startswith("anthropic"):
        # Longest edge 1568 px and about 1.15 megapixels (1600 tokens of 750 px).
        limits += [1568 / side, math.sqrt(1600 * 750) / side]
    elif target in ("openai-patches-mini", "openai-patches-nano", "openai-o4-mini"):
        limits.append(math.sqrt(1536 * 32 * 32) / side)  # at most 1536 patches of 32 px
    elif target.startswith("openai"):
        limits += [2048 / side, 768 / side]  # within 2048², then the short side to 768
    elif target.startswith("qwen"):
        # smart_resize: each side rounded to the nearest whole unit (up or down), within
        # 16384 units of area.
        unit = 28 if target.startswith("qwen2") else 32
        seen = min(max(unit, round(side / unit) * unit), math.sqrt(unit * unit * 16384))
        return seen / side
    return min(limits)


def font_px(side: float, reference_font_px: float = REFERENCE_FONT_PX) -> float:
    """The text size on a page of ``side`` px: the renderer's reference layout (1024 px)
    scaled to the page."""
    return reference_font_px * side / 1024


def cell_legibility(
    target: str, cell_height: float, calibrated: Mapping[float, float] | None = None
) -> float:
    """Expected share of characters ``target`` reads in glyph cells ``cell_height`` px tall:
    ``calibrated`` (cell height -> share read, measured) when given, else the prior; linear in
    log-height between measured cells, 0 below the smallest (unknown), the largest's above."""
    if calibrated:
        points = sorted(calibrated.items())
    elif target.startswith("anthropic"):
        points = list(CLAUDE_CELL_ACCURACY)
    else:
        points = list(CONSERVATIVE_CELL_ACCURACY)
    if cell_height < points[0][0]:
        return 0.0
    logs = np.log2([h for h, _ in points])
    return float(np.interp(math.log2(cell_height), logs, [a for _, a in points]))


def calibrated_cells(
    target: str,
    table: Mapping[Mode, ModeLegibility],
    reference_font_px: float = REFERENCE_FONT_PX,
) -> dict[float, float]:
    """A calibrated table (character accuracy per mode, measured at DeepSeek's sizes) as
    character accuracy per glyph cell height at ``target``'s provider's pixels."""
    cells: dict[float, float] = {}
    for mode, row in table.items():
        side = DEEPSEEK_SIDES[mode]
        height = font_px(side, reference_font_px) * provider_scale(target, side)
        cells[round(height, 2)] = max(cells.get(round(height, 2), 0.0), row.character_accuracy)
    return cells


def level_geometry(
    target: str,
    mode: Mode | str,
    side: int,
    calibrated: Mapping[float, float] | None = None,
    reference_font_px: float = REFERENCE_FONT_PX,
) -> LevelGeometry:
    """What a page of ``side`` px drawn for ``target`` at level ``mode`` gives its reader."""
    if side <= 0:
        raise ValueError(f"page side must be positive, got {side}")
    mode = Mode.parse(mode)
    scale = provider_scale(target, side)
    font = font_px(side, reference_font_px)
    cell = font * scale
    return LevelGeometry(
        mode=mode,
        side=side,
        font_px=font,
        sent_side=side * scale,
        cell_height=cell,
        tokens=vision_tokens(side, side, target, mode),
        legibility=cell_legibility(target, cell, calibrated),
    )


def _rank(level: LevelGeometry, faded: bool) -> tuple[float, float, bool, int]:
    score = level.legible_per_token if faded else level.legibility
    # Equal cells (a provider shrinking larger pages to one size): the page the provider keeps
    # as drawn (crisper than its resampling), then the smaller page (fewer bytes).
    kept = abs(level.sent_side - level.side) < 0.5
    return (round(score, 12), round(level.cell_height, 3), kept, -level.side)


def level_sides(
    target: str,
    calibrated: Mapping[float, float] | None = None,
    reference_font_px: float = REFERENCE_FONT_PX,
) -> dict[Mode, int]:
    """The page side ``target`` draws each fading level at (see the module docstring);
    DeepSeek-OCR's own sizes for the DeepSeek targets."""
    if not has_own_geometry(target):
        return dict(DEEPSEEK_SIDES)
    sides: dict[Mode, int] = {}
    floor = MIN_SIDE
    for mode in reversed(FADING_ORDER):  # faintest first: a sharper level is never smaller
        before = DEEPSEEK_SIDES[mode]
        budget = vision_tokens(before, before, target, mode)
        candidates = [
            level_geometry(target, mode, side, calibrated, reference_font_px)
            for side in range(floor, MAX_SIDE + 1, SIDE_STEP)
        ]
        affordable = [c for c in candidates if c.tokens <= budget] or candidates[:1]
        best = max(affordable, key=lambda c: _rank(c, mode in FADED_LEVELS))
        sides[mode] = best.side
        floor = best.side
    return sides
