"""The models a memory is sent to: what one image costs each, and what one request may carry.

One :class:`TargetSpec` per model family holds the vendor's published rule for the vision tokens
of one image of ``width x height`` pixels and the vendor's request limits, with the rule's
source and the date it was read (vendors change their formulas: a bill that disagrees wins, see
``optical_memory.agents.calibration``). Which family a LangChain chat model belongs to is the
agents layer's business (``optical_memory.agents.model_family``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from optical_memory.modes import Mode

if TYPE_CHECKING:
    from collections.abc import Callable

#: A mebibyte: the vendors' "MB" in their request limits.
MB = 1024 * 1024


@dataclass(frozen=True)
class RequestLimits:
    """What one request to the target may carry, from the vendor's documentation.

    ``max_images`` images and ``max_bytes`` bytes of image data (base64 adds a third on the
    wire; the limits here are of the raw image bytes, with that third taken off);
    ``max_side_when_many`` caps a side in pixels once more than ``many`` images are sent.
    """

    max_images: int
    max_bytes: int
    max_side_when_many: int | None = None
    many: int = 0


@dataclass(frozen=True)
class TargetSpec:
    """A model family's image cost rule and request limits, with where they come from."""

    name: str
    family: str
    source: str
    read: str
    """When the source was read (``YYYY-MM``): older than a year, check it again."""
    cost: Callable[[int, int, Mode | None], int]
    limits: RequestLimits


def _deepseek_native(width: int, height: int, mode: Mode | None) -> int:
    return Mode.parse(mode or Mode.BASE).sequence_tokens(width, height)


def _deepseek_vllm(width: int, height: int, mode: Mode | None) -> int:
    """vLLM's DeepSeek-OCR processor: always Gundam settings (1024-px global view, 640-px tiles,
    2 to 6 of them), whatever mode the page was drawn at."""
    global_view = Mode.BASE.sequence_tokens()
    if width <= 640 and height <= 640:
        return global_view
    from optical_memory.modes import gundam_grid

    w, h = gundam_grid(width, height, min_tiles=2, max_tiles=6)
    return global_view + (10 * w + 1) * (10 * h)


def _openai_tiles(base: int, per_tile: int) -> Callable[[int, int, Mode | None], int]:
    """OpenAI's tile rule: fit in 2048², shrink the short side to 768, ``base`` + ``per_tile``
    per 512-px tile."""

    def cost(width: int, height: int, mode: Mode | None) -> int:
        w, h = float(width), float(height)
        if max(w, h) > 2048:
            scale = 2048 / max(w, h)
            w, h = w * scale, h * scale
        if min(w, h) > 768:
            scale = 768 / min(w, h)
            w, h = w * scale, h * scale
        return base + per_tile * math.ceil(w / 512) * math.ceil(h / 512)

    return cost


def _openai_patches(multiplier: float) -> Callable[[int, int, Mode | None], int]:
    """OpenAI's patch rule (GPT-4.1-mini/nano, o4-mini, GPT-5-mini/nano): 32-px patches,
    scaled down to at most 1536 patches, times the model's multiplier."""

    def cost(width: int, height: int, mode: Mode | None) -> int:
        patches = math.ceil(width / 32) * math.ceil(height / 32)
        if patches > 1536:
            shrink = math.sqrt(1536 * 32 * 32 / (width * height))
            w, h = width * shrink, height * shrink
            shrink *= min(math.floor(w / 32) / (w / 32), math.floor(h / 32) / (h / 32))
            patches = math.ceil(width * shrink / 32) * math.ceil(height * shrink / 32)
        return math.ceil(min(patches, 1536) * multiplier)

    return cost


_ANTHROPIC_MAX_EDGE = 1568
_ANTHROPIC_MAX_TOKENS = 1600  # about 1.15 megapixels at 750 px per token


def _anthropic(width: int, height: int, mode: Mode | None) -> int:
    w, h = float(width), float(height)
    if max(w, h) > _ANTHROPIC_MAX_EDGE:
        scale = _ANTHROPIC_MAX_EDGE / max(w, h)
        w, h = w * scale, h * scale
    max_area = _ANTHROPIC_MAX_TOKENS * 750
    if w * h > max_area:
        scale = math.sqrt(max_area / (w * h))
        w, h = w * scale, h * scale
    return max(1, math.ceil(int(w) * int(h) / 750))


def _qwen(patch: int, min_pixels: int, max_pixels: int) -> Callable[[int, int, Mode | None], int]:
    """Qwen-VL's ``smart_resize`` to multiples of ``patch`` (2x2 merged vision patches) within
    ``min_pixels .. max_pixels``, then one token per ``patch x patch``."""

    def cost(width: int, height: int, mode: Mode | None) -> int:
        f = patch
        h_bar = max(f, round(height / f) * f)
        w_bar = max(f, round(width / f) * f)
        if h_bar * w_bar > max_pixels:
            beta = math.sqrt(height * width / max_pixels)
            h_bar = max(f, math.floor(height / beta / f) * f)
            w_bar = max(f, math.floor(width / beta / f) * f)
        elif h_bar * w_bar < min_pixels:
            beta = math.sqrt(min_pixels / (height * width))
            h_bar = math.ceil(height * beta / f) * f
            w_bar = math.ceil(width * beta / f) * f
        return (h_bar // f) * (w_bar // f)

    return cost


def _gemini2(width: int, height: int, mode: Mode | None) -> int:
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


def _flat(tokens: int) -> Callable[[int, int, Mode | None], int]:
    def cost(width: int, height: int, mode: Mode | None) -> int:
        return tokens

    return cost


_OPENAI_DOC = "platform.openai.com/docs/guides/images-vision, 'Calculating costs'"
_OPENAI_LIMITS = RequestLimits(max_images=500, max_bytes=50 * MB * 3 // 4)
_GEMINI_DOC = "ai.google.dev/gemini-api/docs/tokens and /media-resolution"
_GEMINI_LIMITS = RequestLimits(max_images=3000, max_bytes=20 * MB * 3 // 4)
# vLLM serves one image per prompt unless started with --limit-mm-per-prompt; the limit here
# is what docs/serving.md starts it with. No byte limit of its own: the HTTP server's.
_VLLM_LIMITS = RequestLimits(max_images=64, max_bytes=64 * MB)

_SPECS = (
    TargetSpec(
        "deepseek-ocr",
        "DeepSeek-OCR run locally (ChatDeepSeekOCR): each page at its own mode",
        "the DeepSeek-OCR paper and its reference code (optical_memory.modes)",
        "2025-10",
        _deepseek_native,
        RequestLimits(max_images=64, max_bytes=64 * MB),
    ),
    TargetSpec(
        "deepseek-ocr-vllm",
        "DeepSeek-OCR behind vLLM's stock processor (Gundam settings for every image)",
        "vllm/transformers_utils/processors/deepseek_ocr.py (vLLM 0.11)",
        "2025-11",
        _deepseek_vllm,
        _VLLM_LIMITS,
    ),
    TargetSpec(
        "openai",
        "GPT-4o, GPT-4.1, GPT-4.5 (85 + 170 per 512-px tile)",
        _OPENAI_DOC,
        "2025-08",
        _openai_tiles(85, 170),
        _OPENAI_LIMITS,
    ),
    TargetSpec(
        "openai-gpt-4o-mini",
        "GPT-4o-mini (2833 + 5667 per tile: the price of GPT-4o in its cheaper tokens)",
        _OPENAI_DOC,
        "2025-08",
        _openai_tiles(2833, 5667),
        _OPENAI_LIMITS,
    ),
    TargetSpec(
        "openai-gpt-5",
        "GPT-5 and GPT-5-chat (70 + 140 per tile)",
        _OPENAI_DOC,
        "2025-08",
        _openai_tiles(70, 140),
        _OPENAI_LIMITS,
    ),
    TargetSpec(
        "openai-o-series",
        "o1, o3 (75 + 150 per tile)",
        _OPENAI_DOC,
        "2025-08",
        _openai_tiles(75, 150),
        _OPENAI_LIMITS,
    ),
    TargetSpec(
        "openai-patches-mini",
        "GPT-4.1-mini, GPT-5-mini (32-px patches, at most 1536, x 1.62)",
        _OPENAI_DOC,
        "2025-08",
        _openai_patches(1.62),
        _OPENAI_LIMITS,
    ),
    TargetSpec(
        "openai-patches-nano",
        "GPT-4.1-nano, GPT-5-nano (32-px patches, at most 1536, x 2.46)",
        _OPENAI_DOC,
        "2025-08",
        _openai_patches(2.46),
        _OPENAI_LIMITS,
    ),
    TargetSpec(
        "openai-o4-mini",
        "o4-mini (32-px patches, at most 1536, x 1.72)",
        _OPENAI_DOC,
        "2025-08",
        _openai_patches(1.72),
        _OPENAI_LIMITS,
    ),
    TargetSpec(
        "anthropic",
        "Claude 3.x and 4.x (w*h/750 within 1568 px and about 1.15 MP)",
        "docs.anthropic.com/en/docs/build-with-claude/vision, 'Evaluate image size' and 'FAQ'",
        "2025-08",
        _anthropic,
        # 100 images per API request, 32 MB per request; over 20 images, 2000 px a side.
        RequestLimits(100, 32 * MB * 3 // 4, max_side_when_many=2000, many=20),
    ),
    TargetSpec(
        "gemini",
        "Gemini 2.x (258 if both sides <= 384 px, else 258 per 768-px tile)",
        _GEMINI_DOC,
        "2025-08",
        _gemini2,
        _GEMINI_LIMITS,
    ),
    TargetSpec(
        "gemini-3",
        "Gemini 3 at the default media_resolution for images, high: 1120 per image",
        _GEMINI_DOC,
        "2025-11",
        _flat(1120),
        _GEMINI_LIMITS,
    ),
    TargetSpec(
        "gemini-3-low",
        "Gemini 3 with media_resolution low: 280 per image (medium: 560)",
        _GEMINI_DOC,
        "2025-11",
        _flat(280),
        _GEMINI_LIMITS,
    ),
    TargetSpec(
        "qwen2.5-vl",
        "Qwen2.5-VL (28-px units, 56² .. 28²·16384 pixels)",
        "Qwen2VLImageProcessor.smart_resize in transformers",
        "2025-03",
        _qwen(28, 56 * 56, 28 * 28 * 16384),
        _VLLM_LIMITS,
    ),
    TargetSpec(
        "qwen3-vl",
        "Qwen3-VL (16-px patches merged 2x2: 32-px units, 64² .. 32²·16384 pixels)",
        "Qwen3-VL's preprocessor_config.json (patch_size 16, merge_size 2) in transformers",
        "2025-10",
        _qwen(32, 64 * 64, 32 * 32 * 16384),
        _VLLM_LIMITS,
    ),
)

#: Every target by name.
TARGET_SPECS: dict[str, TargetSpec] = {spec.name: spec for spec in _SPECS}
Target = str
TARGETS: tuple[str, ...] = tuple(TARGET_SPECS)


def target_spec(target: str) -> TargetSpec:
    """The :class:`TargetSpec` of ``target``, or a ``ValueError`` listing the targets."""
    spec = TARGET_SPECS.get(target)
    if spec is None:
        raise ValueError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    return spec


def target_names(text: str) -> list[str]:
    """The targets a comma-separated list names (``"openai, anthropic"``), each checked by
    :func:`target_spec`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        target_spec(name)
    return names


def vision_tokens(
    width: int,
    height: int,
    target: str = "deepseek-ocr",
    mode: Mode | str | None = None,
    *,
    detail: Literal["high", "low"] = "high",
) -> int:
    """Tokens one ``width x height`` image costs the ``target`` model (see
    :data:`TARGET_SPECS` for each rule and its source).

    ``mode`` matters to ``deepseek-ocr`` only (default BASE); ``detail="low"`` is OpenAI's
    flat low-detail price (85 for the GPT-4o family).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    spec = target_spec(target)
    if detail == "low" and target.startswith("openai"):
        return 85
    if detail not in ("high", "low"):
        raise ValueError(f"detail must be 'high' or 'low', not {detail!r}")
    return spec.cost(width, height, None if mode is None else Mode.parse(mode))
